// The web app in a real browser. Run by tests/browser.rs, which starts `kuma
// serve` and passes everything in the environment:
//   KUMA_URL, KUMA_ANALYST_TOKEN, KUMA_BROADCASTER_TOKEN, KUMA_CAMPAIGN, KUMA_AT,
//   KUMA_BIN + KUMA_ARGS (to run `kuma call` on the server's database),
//   KUMA_CHROMIUM (the system Chromium), KUMA_PROFILE (a fresh user-data dir),
//   KUMA_SCREENSHOTS (where the screenshots go).
// Every check throws on failure; node exits non-zero and the Rust test shows why.

import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import path from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run this through \`cargo test --test browser\`)`);
  return v;
};
const base = env("KUMA_URL");
const analyst = env("KUMA_ANALYST_TOKEN");
const broadcaster = env("KUMA_BROADCASTER_TOKEN");
const admin = env("KUMA_ADMIN_TOKEN");
const campaign = env("KUMA_CAMPAIGN");
const at = env("KUMA_AT");
const shots = env("KUMA_SCREENSHOTS");
const kumaArgs = env("KUMA_ARGS").split("\n");
const PAGE_BUDGET = 150 * 1024;

const step = (what) => console.log(`- ${what}`);

// The status of a GET with a bearer token.
async function status(pathname, token) {
  return (await fetch(base + pathname, { headers: { Authorization: `Bearer ${token}` } })).status;
}

async function api(pathname, token) {
  const res = await fetch(base + pathname, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, `${pathname}: ${res.status}`);
  return res;
}

const context = await chromium.launchPersistentContext(env("KUMA_PROFILE"), {
  executablePath: env("KUMA_CHROMIUM"),
  headless: true,
  viewport: { width: 412, height: 915 }, // a common Android phone
  locale: "en-GB",
  acceptDownloads: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
// Pages must load nothing from anywhere but kuma itself (no CDN).
const foreign = [];
await context.route("**/*", (route) => {
  const url = new URL(route.request().url());
  if (url.origin === new URL(base).origin) return route.continue();
  foreign.push(url.href);
  return route.abort();
});
const page = context.pages()[0] ?? (await context.newPage());
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(e.message));
const prompts = [];
page.on("response", (r) => {
  if (new URL(r.url()).pathname.startsWith("/audio/")) prompts.push(r.status());
});

async function shot(name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/// The bytes a page costs on a first visit: its HTML and every stylesheet and
/// script it links (audio is fetched only when played), unpacked; and what goes
/// over the line (gzip).
async function weight(url) {
  const assets = await page.evaluate(() =>
    [...document.querySelectorAll('link[rel=stylesheet], script[src]')].map((e) => e.href || e.src),
  );
  let total = 0;
  let wire = 0;
  for (const u of [url, ...assets]) {
    const res = await context.request.get(u);
    assert.equal(res.headers()["content-encoding"], "gzip", `${u} is sent gzipped`);
    const body = await res.body();
    if (u.includes("/assets/kuma.js")) assert.ok(body.includes("kumaSimulator"), `${u} is the script`);
    if (u.includes("/assets/kuma.css")) assert.ok(body.includes("box-sizing"), `${u} is the stylesheet`);
    total += body.length;
    wire += Number(res.headers()["content-length"]);
  }
  assert.ok(total < PAGE_BUDGET, `${url} weighs ${total} bytes with its assets (budget ${PAGE_BUDGET})`);
  return `${total} bytes (${wire} over the line)`;
}

async function open(pathname, status = 200) {
  const res = await page.goto(base + pathname);
  assert.equal(res.status(), status, `${pathname}: ${res.status()}`);
  return res;
}

async function login(token) {
  await open("/login");
  await page.fill("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("form.login button[type=submit]")]);
}

try {
  step("without a login, pages send you to the login page, and back after it");
  await page.goto(`${base}/campaigns/${campaign}?by=q_gender`);
  assert.equal(new URL(page.url()).pathname, "/login");
  await shot("login");
  console.log(`  login page: ${await weight(page.url())}`);

  step("a wrong token is refused");
  await page.fill("#token", "kuma_" + "0".repeat(64));
  await Promise.all([page.waitForNavigation(), page.click("form.login button[type=submit]")]);
  assert.match(await page.textContent("p.error"), /unknown|revoked/);

  step("an analyst logs in and sees the campaign list");
  await page.fill("#token", analyst);
  await Promise.all([page.waitForNavigation(), page.click("form.login button[type=submit]")]);
  const back = new URL(page.url());
  assert.equal(back.pathname + back.search, `/campaigns/${campaign}?by=q_gender`);
  await open("/");
  await page.waitForSelector(`[data-campaign="${campaign}"]`);
  const cookies = await context.cookies(base);
  const login_cookie = cookies.find((c) => c.name === "kuma_token");
  assert.ok(login_cookie?.httpOnly, "the login cookie is HttpOnly");
  assert.equal(login_cookie.sameSite, "Strict");
  const csp = (await context.request.get(base + "/")).headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  console.log(`  campaign list: ${await weight(base + "/")}`);
  await shot("campaigns");

  step("the campaign page shows the API's numbers");
  const results = await (await api(`/api/campaigns/${campaign}/results`, analyst)).json();
  await open(`/campaigns/${campaign}`);
  assert.ok(results.calls > 0, "kuma simulate made calls");
  assert.equal(Number(await page.getAttribute("#calls", "data-count")), results.calls);
  assert.equal(Number(await page.getAttribute("#completed", "data-count")), results.completed);
  for (const q of results.questions) {
    const section = `section.question[data-question="${q.id}"]`;
    assert.equal(Number(await page.getAttribute(section, "data-answered")), q.answered, q.id);
    for (const c of q.choices) {
      const shown = await page.getAttribute(`${section} g[data-key="${c.id}"]`, "data-value");
      assert.equal(Number(shown), c.count, `${q.id}/${c.id}`);
    }
  }
  for (const [lang, n] of Object.entries(results.languages)) {
    const shown = await page.getAttribute(`svg g[data-key="${lang}"]`, "data-value");
    assert.equal(Number(shown), n, `language ${lang}`);
  }
  const funnel = await (await api(`/api/campaigns/${campaign}/funnel`, analyst)).json();
  for (const node of funnel.nodes) {
    const text = await page.textContent(`#funnel g[data-key="${node.node}"] text.n`);
    const cell = (v) => (v === "masked" ? "*" : v);
    assert.equal(text, `${cell(node.reached)} · ✕ ${cell(node.hung_up)}`, `funnel ${node.node}`);
  }
  assert.ok(funnel.nodes.some((x) => x.reached === "<5"), "some node is reached by fewer than 5 calls");
  // Rows with one line per caller are for admins: no download for analysts.
  assert.equal(await page.$(`a[href="/api/campaigns/${campaign}/flow-results"]`), null, "no FLOIP button");
  assert.equal(await page.$(`a[href^="/api/campaigns/${campaign}/answers.csv"]`), null, "no CSV button");
  const hourly = await page.$$eval("section.hourly svg g", (gs) =>
    gs.reduce((sum, g) => sum + Number(g.dataset.value), 0),
  );
  assert.ok(hourly >= results.broadcasts.at(-1).calls, `calls per hour ${hourly}`);
  assert.equal(await status(`/api/campaigns/${campaign}/callbacks`, analyst), 403);
  const cb = await (await api(`/api/campaigns/${campaign}/callbacks`, admin)).json();
  assert.ok(cb.summary.callbacks > 0, "the test queued call-backs");
  assert.equal(Number(await page.getAttribute("#callbacks", "data-total")), cb.summary.callbacks);
  for (const [status, n] of Object.entries(cb.summary.by_status)) {
    const shown = await page.getAttribute(`#callbacks li[data-status="${status}"]`, "data-count");
    assert.equal(Number(shown), n, `call-backs ${status}`);
  }
  const callbackRows = () => page.$$eval("#callbacks tbody tr", (trs) => trs.map((tr) => Number(tr.dataset.id)));
  assert.deepEqual(await callbackRows(), [], "no call-back rows for analysts");
  console.log(`  campaign page: ${await weight(page.url())}`);
  await shot("campaign");
  await page.locator("#callbacks").screenshot({ path: path.join(shots, "callbacks.png") });

  step("a breakdown by gender shows <5 where the API does");
  const by = await (await api(`/api/campaigns/${campaign}/results?by=q_gender`, analyst)).json();
  // Choosing applies at once (the script submits the form).
  await Promise.all([page.waitForNavigation(), page.selectOption("select[name=by]", "q_gender")]);
  assert.equal(new URL(page.url()).searchParams.get("by"), "q_gender");
  let masked = 0;
  for (const q of by.questions) {
    for (const c of q.choices) {
      for (const [g, v] of Object.entries(c.by)) {
        const cell = `section.question[data-question="${q.id}"] tr[data-choice="${c.id}"] td[data-by="${g}"]`;
        const text = (await page.textContent(cell)).trim();
        assert.equal(text, v === "masked" ? "*" : String(v), `${q.id}/${c.id}/${g}`);
        if (v === "<5") masked++;
      }
    }
  }
  assert.ok(masked > 0, "60 callers over 7 regions leave some groups under 5");
  console.log(`  campaign page by gender: ${await weight(page.url())}`);
  await shot("campaign-by-gender");

  step("a French browser gets French pages");
  const fr = await (await fetch(`${base}/login`, { headers: { "Accept-Language": "fr-ML,fr;q=0.9,en;q=0.5" } })).text();
  assert.ok(fr.includes('<html lang="fr">') && fr.includes("Se connecter"), "French by Accept-Language");

  step("the page speaks French with ?lang=fr, and remembers it");
  await open(`/campaigns/${campaign}?lang=fr`);
  assert.equal(await page.getAttribute("html", "lang"), "fr");
  assert.ok((await page.textContent("main")).includes("Résultats"));
  await open(`/campaigns/${campaign}`);
  assert.equal(await page.getAttribute("html", "lang"), "fr");
  await shot("campaign-fr");
  await page.locator("#funnel").screenshot({ path: path.join(shots, "funnel-fr.png") });
  await open(`/campaigns/${campaign}?lang=en`);
  assert.equal(await page.getAttribute("html", "lang"), "en");

  step("an admin sees the latest call-backs, and the CSV button downloads the API's export");
  await login(admin);
  await open(`/campaigns/${campaign}`);
  assert.deepEqual(await callbackRows(), cb.callbacks.slice(0, 10).map((c) => c.id), "the latest call-backs");
  assert.ok(await page.$(`a[href="/api/campaigns/${campaign}/flow-results"]`), "a FLOIP button");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click(`a[href^="/api/campaigns/${campaign}/answers.csv"]`),
  ]);
  const csv = readFileSync(await download.path(), "utf8");
  assert.equal(await status(`/api/campaigns/${campaign}/answers.csv`, analyst), 403);
  const apiCsv = await (await api(`/api/campaigns/${campaign}/answers.csv`, admin)).text();
  assert.equal(csv, apiCsv);
  const answers = results.questions.reduce((s, q) => s + q.answered, 0);
  assert.equal(csv.trim().split("\n").length - 1, answers, "one CSV row per answer");
  await login(analyst);

  step("an unknown campaign is a 404 page");
  await open("/campaigns/no-such-campaign", 404);

  step("an analyst gets a 403 page for voice messages and the simulator");
  await open(`/campaigns/${campaign}/recordings`, 403);
  await shot("forbidden");
  await open(`/campaigns/${campaign}/simulator`, 403);

  step("the on-air board changes when a listener answers");
  await open(`/campaigns/${campaign}/board?q=q_offered_work`);
  await page.waitForFunction(() => document.getElementById("live-status").textContent.includes("●"));
  const yes = 'li[data-choice="yes"] .count';
  const before = Number(await page.getAttribute(yes, "data-count"));
  const q = results.questions.find((x) => x.id === "q_offered_work");
  assert.equal(before, q.choices.find((c) => c.id === "yes").count);
  await shot("board-before");
  // A real call through the engine and the store: language fr, the poll, "yes".
  execFileSync(env("KUMA_BIN"), ["call", campaign, "--digits", "2 2 1", "--at", at, ...kumaArgs], {
    stdio: "ignore",
  });
  await page.waitForFunction(
    ([sel, n]) => Number(document.querySelector(sel).dataset.count) === n,
    [yes, before + 1],
    { timeout: 15000 },
  );
  console.log(`  on-air board: ${await weight(page.url())}`);
  await shot("board-after");
  // As on the studio's screen.
  await page.setViewportSize({ width: 1920, height: 1080 });
  await shot("board-studio");
  await page.setViewportSize({ width: 412, height: 915 });

  step("a broadcaster listens to a voice message and notes it");
  await page.click("form[action='/logout'] button");
  await page.waitForURL("**/login");
  await login(broadcaster);
  await open(`/campaigns/${campaign}/recordings`);
  const rec = "li.recording";
  const src = await page.getAttribute(`${rec} audio`, "src");
  const audio = await context.request.get(base + src);
  assert.equal(audio.status(), 200, "the audio plays with the login cookie");
  assert.equal(audio.headers()["content-type"], "audio/wav");
  await page.fill(`${rec} textarea[name=note]`, "Une auditrice de Kayes raconte une offre de travail.");
  await page.check(`${rec} input[name=picked]`);
  await Promise.all([page.waitForNavigation(), page.click(`${rec} button[type=submit]`)]);
  assert.ok((await page.textContent(`${rec} .saved`)).length > 0);
  assert.equal(await page.inputValue(`${rec} textarea[name=note]`), "Une auditrice de Kayes raconte une offre de travail.");
  assert.ok(await page.isChecked(`${rec} input[name=picked]`));
  const listed = await (await api(`/api/campaigns/${campaign}/recordings`, broadcaster)).json();
  assert.equal(listed.recordings[0].note, "Une auditrice de Kayes raconte une offre de travail.");
  assert.equal(listed.recordings[0].picked, true);
  console.log(`  voice messages: ${await weight(page.url())}`);
  await shot("recordings");

  step("a cookie-authenticated write from another origin is refused");
  const forged = await context.request.put(`${base}/api/recordings/${listed.recordings[0].id}`, {
    headers: { "Content-Type": "application/json", Origin: "http://evil.example" },
    data: { note: "forged", picked: false },
  });
  assert.equal(forged.status(), 403);
  const notJson = await fetch(`${base}/api/recordings/${listed.recordings[0].id}`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${broadcaster}`, "Content-Type": "text/plain" },
    body: "note",
  });
  assert.equal(notJson.status, 400, "a note must be JSON");
  const byApi = await fetch(`${base}/api/recordings/${listed.recordings[0].id}`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${broadcaster}`, "Content-Type": "application/json" },
    body: JSON.stringify({ note: "Kayes", picked: false }),
  });
  assert.equal(byApi.status, 200);
  const relisted = await (await api(`/api/campaigns/${campaign}/recordings`, broadcaster)).json();
  assert.equal(relisted.recordings[0].note, "Kayes");
  assert.equal(relisted.recordings[0].picked, false);

  {
    step("a broadcaster walks one simulated call with the keypad");
    await open(`/campaigns/${campaign}/simulator`);
    await page.fill("#sim-at", at);
    const sim = page.locator("#simulator");
    const idle = async () =>
      page.waitForFunction(() => document.getElementById("simulator").dataset.busy !== "1");
    // Presses a key once the engine waits for one, skipping prompts before it.
    const press = async (key) => {
      for (let i = 0; i < 20; i++) {
        await idle();
        const waiting = await sim.getAttribute("data-waiting");
        if (waiting === "key") break;
        assert.equal(waiting, "prompt", `waiting for ${waiting} before key ${key}`);
        await page.click("#sim-skip");
      }
      await page.click(`.key[data-key="${key}"]`);
      await idle();
    };
    await page.click("#sim-start");
    await press("2"); // French
    await press("2"); // the poll
    await press("1"); // offered work: yes
    await page.waitForSelector("#sim-screen .answer");
    assert.match(await page.textContent("#sim-screen"), /q_offered_work = yes/);
    assert.ok((await page.textContent("#sim-screen")).includes("▶ fr/"), "prompts are played in French");
    assert.ok(prompts.length > 0 && prompts.every((s) => s === 200 || s === 206 || s === 304), `prompt audio: ${prompts}`);
    await shot("simulator");
    await page.click("#sim-hangup");
    await page.waitForSelector("#sim-screen .ended");
    const after = await (await api(`/api/campaigns/${campaign}/results`, broadcaster)).json();
    const yesAfter = after.questions.find((x) => x.id === "q_offered_work").choices.find((c) => c.id === "yes").count;
    assert.equal(yesAfter, before + 1, "a simulated call stores nothing");
    console.log(`  simulator: ${await weight(page.url())}`);
  }

  assert.deepEqual(foreign, [], "pages loaded something from outside kuma");
  assert.deepEqual(pageErrors, [], "scripts failed");
  console.log("all browser checks passed");
} catch (e) {
  try {
    await shot("failure");
  } catch {}
  console.error(e);
  process.exitCode = 1;
} finally {
  await context.close();
}
