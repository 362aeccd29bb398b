export { buildAuthServer, migrationsDir } from './app.ts';
export type { AuthConfig, IssuerRoute, MerchantSeed } from './config.ts';
export { createMerchant, listMerchants, merchantExists, retirePreviousApiKeys, rollApiKey, showMerchant, type NewMerchant } from './merchants.ts';
