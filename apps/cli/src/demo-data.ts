/**
 * The demo world `kessai start` runs is data of the settlement server (its fixtures/: two bank
 * descriptions and their test cards as account-import files); re-exported here for the CLI.
 */
export { demoBanks, demoCardRows, demoIssuers, demoMerchantName, type DemoCard, type DemoIssuer } from '@kessai/settlement-server';
