-- Credit cards: a cardholder account may draw on a credit line instead of (or beside) paid-in
-- funds. The line is an account of its own (`credit_line`, one per card) that grants the limit to
-- the cardholder account by an ordinary transfer; the cardholder account keeps its
-- debits_must_not_exceed_credits flag, so spending can never pass the limit, and the line keeps
-- credits_must_not_exceed_debits, so lowering the limit can never hand back more than was granted
-- or what the payer has already spent (docs/ledger.md, "Credit lines").

alter table ledger_accounts drop constraint ledger_accounts_kind_check;
alter table ledger_accounts add constraint ledger_accounts_kind_check
  check (kind in ('cardholder', 'merchant', 'issuer_funding', 'fee_income', 'merchant_payout', 'credit_line'));

alter table cards add column credit_line_account_id text references ledger_accounts (id);
