// The broadcaster's studio in a real browser. Run by tests/studio_browser.rs,
// which starts `kuma serve` on a copy of the example campaign and passes:
//   KUMA_URL, KUMA_BROADCASTER_TOKEN, KUMA_CAMPAIGN, KUMA_CHROMIUM, KUMA_PROFILE,
//   KUMA_SCREENSHOTS, KUMA_MP3 (a recording to upload, made by LAME at test
//   time), KUMA_FAKE_MIC (a WAV Chromium's fake microphone plays).
// Every check throws on failure; node exits non-zero and the Rust test shows why.

import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import path from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run this through \`cargo test --test studio_browser\`)`);
  return v;
};
const base = env("KUMA_URL");
const broadcaster = env("KUMA_BROADCASTER_TOKEN");
const campaign = env("KUMA_CAMPAIGN");
const shots = env("KUMA_SCREENSHOTS");
const PAGE_BUDGET = 150 * 1024;
const step = (what) => console.log(`- ${what}`);

const context = await chromium.launchPersistentContext(env("KUMA_PROFILE"), {
  executablePath: env("KUMA_CHROMIUM"),
  headless: true,
  viewport: { width: 412, height: 915 },
  locale: "en-GB",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${env("KUMA_FAKE_MIC")}`,
  ],
});
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

async function shot(name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

// The bytes a page costs on a first visit: its HTML and its stylesheets and
// scripts, unpacked.
async function weight(url) {
  const assets = await page.evaluate(() =>
    [...document.querySelectorAll("link[rel=stylesheet], script[src]")].map((e) => e.href || e.src),
  );
  let total = 0;
  for (const u of [url, ...assets]) {
    const res = await context.request.get(u);
    assert.equal(res.status(), 200, u);
    total += (await res.body()).length;
  }
  assert.ok(total < PAGE_BUDGET, `${url} weighs ${total} bytes with its assets (budget ${PAGE_BUDGET})`);
  return `${total} bytes`;
}

try {
  step("a broadcaster logs in");
  await page.goto(`${base}/login`);
  await page.fill("#token", broadcaster);
  await Promise.all([page.waitForNavigation(), page.click("form.login button[type=submit]")]);

  step("the campaign page links to the studio");
  await page.goto(`${base}/campaigns/${campaign}`);
  await page.click(`a[href="/campaigns/${campaign}/schedule"]`);
  await page.waitForSelector("#schedule[data-ready=true]");
  console.log(`  schedule page: ${await weight(page.url())}`);
  await shot("studio-schedule");

  step("a bad time zone is pointed at as one types");
  const tz = page.locator('input[data-field="timezone"]');
  await tz.fill("Mars/Olympus");
  await page.waitForFunction(() => document.getElementById("schedule-error").textContent.includes("is not a time zone"));
  assert.equal(await tz.getAttribute("aria-invalid"), "true");
  await tz.fill("Africa/Bamako");
  await page.waitForFunction(() => document.getElementById("schedule").dataset.valid === "true");

  step("the Tuesday broadcast moves to Wednesday; the next broadcasts follow as one types");
  const first = page.locator("#slots li.slot").first();
  await first.locator('input[data-day="tue"]').uncheck();
  await first.locator('input[data-day="wed"]').check();
  await page.waitForFunction(() => {
    const next = [...document.querySelectorAll("#next li")].map((l) => l.textContent);
    return next.some((t) => t.startsWith("Wednesday")) && !next.some((t) => t.startsWith("Tuesday"));
  });
  const pollText = await page.textContent("#poll-state");
  assert.match(pollText, /poll is (open|closed) now/);

  step("a one-off date is added, and saved");
  await page.click("#add-once");
  const once = page.locator("#slots li.slot").last();
  await once.locator('input[data-field="date"]').fill("2026-12-24");
  await once.locator('input[data-field="time"]').fill("20:00");
  await page.click("#save");
  await page.waitForFunction(() => document.getElementById("schedule").dataset.saved);
  assert.equal(await page.textContent("#schedule-status"), "Saved");
  await shot("studio-schedule-saved");
  // The file's version moved on: saving again on it works, no conflict.
  await page.click("#save");
  await page.waitForFunction(() => document.getElementById("schedule-status").textContent === "Saved");

  step("the prompts page shows every prompt and its state");
  await page.goto(`${base}/campaigns/${campaign}/prompts`);
  await page.waitForSelector("#prompts[data-ready=true]");
  console.log(`  prompts page: ${await weight(page.url())}`);
  const welcome = page.locator('li.prompt[data-language="bm"][data-prompt="welcome"]');
  assert.equal(await welcome.getAttribute("data-state"), "placeholder");
  assert.equal(await page.locator('li.prompt[data-language="fr"][data-prompt="welcome"]').getAttribute("data-state"), "ok");

  step("an MP3 replaces the Bambara welcome");
  await welcome.locator("input[data-upload]").setInputFiles(env("KUMA_MP3"));
  await page.waitForFunction(() => document.querySelector('li.prompt[data-language="bm"][data-prompt="welcome"]').dataset.uploaded === "ok");
  assert.equal(await welcome.getAttribute("data-state"), "ok");
  const src = await welcome.locator("audio").getAttribute("src");
  assert.equal((await context.request.get(base + src)).status(), 200);

  step("a prompt is recorded from the microphone: level meter, stop, keep");
  const goodbye = page.locator('li.prompt[data-language="bm"][data-prompt="goodbye"]');
  await goodbye.locator("button.record").click();
  await page.waitForFunction(() => {
    const li = document.querySelector('li.prompt[data-language="bm"][data-prompt="goodbye"]');
    return li.dataset.recording === "on" && Number(li.dataset.level) > 0.01;
  });
  await page.waitForTimeout(3000);
  await goodbye.locator("button.record").click();
  assert.equal(await goodbye.getAttribute("data-recording"), "taken");
  await shot("studio-prompts-take");
  await goodbye.locator("button.keep").click();
  await page.waitForFunction(() => {
    const li = document.querySelector('li.prompt[data-language="bm"][data-prompt="goodbye"]');
    return li.dataset.uploaded;
  });
  const status = await goodbye.locator(".status").textContent();
  assert.equal(await goodbye.getAttribute("data-uploaded"), "ok", status);
  assert.ok(Number(await goodbye.getAttribute("data-duration-ms")) > 1000, status);
  await shot("studio-prompts");

  step("this week's question: the page lists the questions in order");
  await page.goto(`${base}/campaigns/${campaign}/questions`);
  await page.waitForSelector("#nodes[data-ready=true]");
  console.log(`  questions page: ${await weight(page.url())}`);
  const ids = await page.$$eval("ol.nodes > li.node", (l) => l.map((li) => li.dataset.node));
  assert.ok(ids.indexOf("q_offered_work") < ids.indexOf("q_region"), ids.join(" "));
  const fresh = page.locator("#new-node");
  assert.equal(await fresh.locator('[data-field="after"]').inputValue(), "q_region");

  step("a new question with three choices is refused until its prompt is recorded in every language");
  await fresh.locator('[data-field="id"]').fill("q_week");
  assert.equal(await fresh.locator('[data-field="prompt"]').inputValue(), "q_week");
  const choiceInputs = fresh.locator('li.choice [data-field="choice"]');
  assert.equal(await choiceInputs.count(), 3);
  for (const [i, id] of ["yes", "no", "not_sure"].entries()) await choiceInputs.nth(i).fill(id);
  await page.click("#add-node");
  await page.waitForFunction(() => document.getElementById("nodes-error").textContent.includes("prompt `q_week` has no recording"));
  assert.match(await page.textContent("#nodes-error"), /stop-trafficking-mali\.toml:\d+: /);

  step("its prompt: recorded from the microphone in French, an MP3 in Bambara and Soninke");
  const frWeek = fresh.locator('li.prompt[data-language="fr"]');
  await frWeek.locator("button.record").click();
  await page.waitForFunction(() => {
    const li = document.querySelector('#new-node li.prompt[data-language="fr"]');
    return li.dataset.recording === "on" && Number(li.dataset.level) > 0.01;
  });
  await page.waitForTimeout(3000);
  await frWeek.locator("button.record").click();
  await frWeek.locator("button.keep").click();
  await page.waitForFunction(() => document.querySelector('#new-node li.prompt[data-language="fr"]').dataset.uploaded);
  assert.equal(await frWeek.getAttribute("data-uploaded"), "ok", await frWeek.locator(".status").textContent());
  for (const lang of ["bm", "snk"]) {
    const li = fresh.locator(`li.prompt[data-language="${lang}"]`);
    await li.locator("input[data-upload]").setInputFiles(env("KUMA_MP3"));
    await page.waitForFunction((l) => document.querySelector(`#new-node li.prompt[data-language="${l}"]`).dataset.uploaded, lang);
    assert.equal(await li.getAttribute("data-uploaded"), "ok", await li.locator(".status").textContent());
  }
  await shot("studio-question-new");

  step("saved: the question is asked after q_region, which now leads to it");
  await Promise.all([page.waitForNavigation(), page.click("#add-node")]);
  await page.waitForSelector("#nodes[data-ready=true]");
  const week = page.locator('li.node[data-node="q_week"]');
  assert.equal(await week.count(), 1);
  assert.equal(await page.locator('li.node[data-node="q_region"] [data-field="next"]').inputValue(), "q_week");
  assert.equal(await week.locator('[data-field="next"]').inputValue(), "poll_thanks");
  const keys = await week.locator('li.choice [data-field="key"]').evaluateAll((l) => l.map((i) => i.value));
  assert.deepEqual(keys, ["1", "2", "3"]);
  await shot("studio-questions");

  const order = () => page.$$eval("ol.nodes > li.node", (l) => l.map((li) => li.dataset.node));
  const nextOf = (id) => page.locator(`li.node[data-node="${id}"] [data-field="next"]`).inputValue();
  step("moved up: asked before q_region; the chain follows");
  await Promise.all([page.waitForNavigation(), week.locator("button.up").click()]);
  await page.waitForSelector("#nodes[data-ready=true]");
  let now = await order();
  assert.equal(now.indexOf("q_week") + 1, now.indexOf("q_region"), now.join(" "));
  assert.equal(await nextOf("q_gender"), "q_week");
  assert.equal(await nextOf("q_week"), "q_region");
  assert.equal(await nextOf("q_region"), "poll_thanks");
  step("moved down again: after q_region");
  await Promise.all([page.waitForNavigation(), week.locator("button.down").click()]);
  await page.waitForSelector("#nodes[data-ready=true]");
  now = await order();
  assert.equal(now.indexOf("q_region") + 1, now.indexOf("q_week"), now.join(" "));
  assert.equal(await nextOf("q_region"), "q_week");
  assert.equal(await nextOf("q_week"), "poll_thanks");

  step("a message removed: what led to it leads where it led");
  await Promise.all([
    page.waitForNavigation(),
    page.locator('li.node[data-node="poll_thanks"] button.delete').click(),
  ]);
  await page.waitForSelector("#nodes[data-ready=true]");
  assert.equal(await page.locator('li.node[data-node="poll_thanks"]').count(), 0);
  assert.equal(await nextOf("q_week"), "menu");

  step("a change that would break the campaign is refused with kuma check's words");
  await week.locator('[data-field="key"]').nth(1).fill("1");
  await week.locator("button.save").click();
  await page.waitForFunction(() => document.getElementById("nodes-error").textContent.length > 0);
  const refusal = await page.textContent("#nodes-error");
  assert.match(refusal, /stop-trafficking-mali\.toml:\d+: .*duplicate key/);
  await page.reload();
  await page.waitForSelector("#nodes[data-ready=true]");

  assert.deepEqual(pageErrors, [], "no script errors");
  assert.deepEqual(foreign, [], "nothing loaded from elsewhere");
  console.log("all studio browser checks passed");
} finally {
  await context.close();
}
