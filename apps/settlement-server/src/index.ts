export { buildSettlementServer, issuerMetadataOf } from './app.ts';
export type { SeedCard, SettlementConfig } from './config.ts';
export { createAccount, createTransfer, readAccount } from './ledger/store.ts';
export { pinVerifier } from './pin.ts';
