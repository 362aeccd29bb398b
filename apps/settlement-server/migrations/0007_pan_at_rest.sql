-- PCI DSS 3.5: the account store keeps no card number, holder name or expiry in plaintext. A card
-- is found by pan_lookup, an HMAC-SHA-256 of the normalized card number under the lookup key, and
-- its data is an AES-256-GCM record under a data key (card_key_id names it). The keys are in the
-- server's key folder, not here, so existing rows cannot be converted in SQL: this migration runs
-- only on an empty cards table and refuses (the server does not start) on a legacy store that
-- holds cards; such a store is re-issued from the issuer's card system (docs/threat-model.md).
do $$
begin
  if exists (select 1 from cards) then
    raise exception 'cards holds plaintext card data; 0007_pan_at_rest needs an empty cards table (docs/threat-model.md, PCI DSS 3.5)';
  end if;
end
$$;

alter table cards drop column card_number;
alter table cards drop column holder_name;
alter table cards drop column expiry;
alter table cards add column pan_lookup text primary key;
alter table cards add column card_record text not null;
alter table cards add column card_key_id text not null;
