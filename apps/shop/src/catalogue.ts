/**
 * The shop's demo catalogue: a few goods priced in JPY (integer minor units; the yen has none
 * below one) and one in KWD (three decimals: a minor unit is a thousandth of a dinar), written
 * to the products table on first start. Later starts leave existing rows as they are, so a price
 * an operator changed in the database is not reset. The storefront's list is read here too.
 */
import { limits, type Currency } from '@kessai/protocol';
import type { Db } from '@kessai/service';

export interface CatalogueProduct {
  /** Stable, readable id: lower-case letters, digits and '-'. */
  id: string;
  name: string;
  description: string;
  unitPriceMinor: bigint;
  currency: Currency;
}

export const productIdPattern = /^[a-z0-9][a-z0-9-]{0,63}$/;

export const catalogue: readonly CatalogueProduct[] = Object.freeze([
  {
    id: 'sencha-100g',
    name: 'Sencha, 100 g',
    description: 'First-flush green tea from Shizuoka',
    unitPriceMinor: 1_200n,
    currency: 'JPY',
  },
  {
    id: 'matcha-30g',
    name: 'Matcha, 30 g',
    description: 'Ceremonial-grade powdered green tea from Uji',
    unitPriceMinor: 2_800n,
    currency: 'JPY',
  },
  {
    id: 'chawan',
    name: 'Chawan',
    description: 'Hand-thrown tea bowl, Mino ware',
    unitPriceMinor: 6_500n,
    currency: 'JPY',
  },
  { id: 'chasen', name: 'Chasen', description: 'Bamboo whisk, 80 tines', unitPriceMinor: 3_300n, currency: 'JPY' },
  {
    id: 'furoshiki',
    name: 'Furoshiki',
    description: 'Cotton wrapping cloth, 70 cm',
    unitPriceMinor: 1_800n,
    currency: 'JPY',
  },
  { id: 'tenugui', name: 'Tenugui', description: 'Hand-dyed cotton towel', unitPriceMinor: 990n, currency: 'JPY' },
  // Priced in Kuwaiti dinar (three decimals): KWD 12.345 is 12,345 minor units.
  {
    id: 'uji-gyokuro-kwd',
    name: 'Gyokuro, 50 g (export)',
    description: 'Shade-grown green tea from Uji, priced in Kuwaiti dinar',
    unitPriceMinor: 12_345n,
    currency: 'KWD',
  },
]);

/** Inserts the catalogue products that are not there yet; returns how many it inserted. */
export async function seedCatalogue(db: Db, products: readonly CatalogueProduct[] = catalogue): Promise<number> {
  return db.transaction(async (tx) => {
    let inserted = 0;
    for (const product of products) {
      if (!productIdPattern.test(product.id) || product.unitPriceMinor <= 0n)
        throw new TypeError(`catalogue product ${product.id} is not valid`);
      const rows = await tx.query<{ id: string }>(
        `insert into products (id, name, description, unit_price_minor, currency) values ($1, $2, $3, $4, $5)
          on conflict (id) do nothing returning id`,
        [product.id, product.name, product.description, product.unitPriceMinor, product.currency],
      );
      inserted += rows.length;
    }
    return inserted;
  });
}

/** A product as the storefront lists it: its price a decimal string of minor units. */
export interface ListedProduct {
  id: string;
  name: string;
  description: string;
  unit_price_minor: string;
  currency: Currency;
}

/** The products on sale, by id, at most limits.listPageMax. */
export async function listProducts(db: Pick<Db, 'query'>): Promise<ListedProduct[]> {
  const rows = await db.query<Omit<ListedProduct, 'unit_price_minor'> & { unit_price_minor: bigint }>(
    'select id, name, description, unit_price_minor, currency from products order by id limit $1',
    [limits.listPageMax],
  );
  return rows.map((row) => ({ ...row, unit_price_minor: BigInt(row.unit_price_minor).toString() }));
}
