export { buildSettlementServer, issuerMetadataOf } from './app.ts';
export type { SeedCard, SettlementConfig } from './config.ts';
export { readAccount } from './ledger/store.ts';
