export { buildShop, migrationsDir, type Shop, type ShopContext } from './app.ts';
export { catalogue, seedCatalogue, type CatalogueProduct } from './catalogue.ts';
export { defineShopConfig, webhookPath, webhookUrl, type ResolvedShopConfig, type ShopConfig } from './config.ts';
export { orderStatuses, type OrderStatus } from './fulfilment.ts';
