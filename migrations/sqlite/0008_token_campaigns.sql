-- Tokens limited to some campaigns (`kuma token create … --campaign ID`,
-- repeatable): a token with rows here reaches those campaigns only, in every
-- page and API route; a token with none reaches every campaign. Keyed by the
-- token's hash, and written before the token itself, so that a token is never
-- usable without its limits. Keep in step with the other backend's folder.

CREATE TABLE token_campaigns (
    token_hash TEXT NOT NULL,
    campaign   TEXT NOT NULL,
    PRIMARY KEY (token_hash, campaign)
);
