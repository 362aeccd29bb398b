-- Accounts are imported by the bank's operator (accounts-import.ts, `kessai accounts import`): a
-- re-import of the same card is `unchanged`, one with other data a conflict. What the card was
-- opened with is kept to tell the two apart: the opening balance and credit line in minor units
-- (null for cards of an earlier version, which are compared on the other fields only).
alter table cards add column opening_balance_minor bigint check (opening_balance_minor >= 0);
alter table cards add column opening_credit_line_minor bigint check (opening_credit_line_minor >= 0);
