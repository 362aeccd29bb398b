export { buildSettlementServer, issuerMetadataOf } from './app.ts';
export type { SeedCard, SettlementConfig } from './config.ts';
export { createAccount, createTransfers, expirePendingTransfers, ledgerTotals, readAccount, readTransfer } from './ledger/store.ts';
export { GroupCommit } from './ledger/group-commit.ts';
export { expireHolds } from './expiry.ts';
export * as rules from './ledger/rules.ts';
export { pinVerifier } from './pin.ts';
