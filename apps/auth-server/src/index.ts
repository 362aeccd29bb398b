export { buildAuthServer, migrationsDir } from './app.ts';
export type { AuthConfig, IssuerRoute, MerchantSeed } from './config.ts';
