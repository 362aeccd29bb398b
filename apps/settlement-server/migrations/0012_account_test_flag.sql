-- Test and live mode at the bank (docs/protocol.md, "Where the bank learns the mode"): a card's
-- account is a test account or a live one, and the issuer declines `livemode_mismatch` when the
-- approval's `lm` (the mode the payer's device was shown) is the other mode. `kessai accounts
-- import`'s `test` column sets it (default live). Null: a card imported before this flag existed,
-- taken as live until a re-import of the same card names its mode (accounts-import.ts), as the
-- demo cards are at every `kessai start`.
alter table cards add column test boolean;
