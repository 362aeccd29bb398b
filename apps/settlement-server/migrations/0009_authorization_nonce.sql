-- The approval nonce each authorization was placed under (reversal.ts): a reversal voids a hold only
-- when it names this nonce, so a late reversal of an earlier attempt of the same payment request
-- cannot release the hold of a later one. Authorizations placed before this migration have none.
alter table authorizations add column approval_nonce text;
