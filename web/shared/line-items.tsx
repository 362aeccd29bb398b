/**
 * The items table of an order, as the shop's order page and the wallet's confirmation screen show
 * it: item, quantity, unit price, amount, and the total (plus any extra footer rows, e.g. captured
 * and refunded). Descriptions pass through `safeDisplay`: they are text the merchant wrote, and the
 * payer must not be shown look-alike or control characters.
 */
import type { ReactNode } from 'react';
import { safeDisplay } from '../../packages/protocol/src/display.ts';
import { lineTotal } from './format.ts';
import { useI18n } from './i18n.tsx';

export interface LineItem {
  description: string;
  quantity: number;
  unit_price_minor: string;
}

interface LineItemsProps {
  caption: string;
  currency: string;
  items: readonly LineItem[];
  /** The whole amount, as the other party stated it (not recomputed here). */
  totalMinor: string;
  /** data-testid of the total's cell. */
  totalTestId: string;
  /** Footer rows after the total, each a `<FooterRow>`. */
  children?: ReactNode;
}

export function LineItems(props: LineItemsProps) {
  const { t, money } = useI18n();
  return (
    <table>
      <caption className="sr-only">{props.caption}</caption>
      <thead>
        <tr>
          <ItemAndQuantityHeads />
          <th scope="col" className="num">
            {t.items.price}
          </th>
          <th scope="col" className="num">
            {t.items.amount}
          </th>
        </tr>
      </thead>
      <tbody>
        {props.items.map((item, index) => (
          <tr key={index}>
            <td>{safeDisplay(item.description)}</td>
            <td className="num">{item.quantity}</td>
            <td className="num">{money(item.unit_price_minor, props.currency)}</td>
            <td className="num">{money(lineTotal(item.quantity, item.unit_price_minor), props.currency)}</td>
          </tr>
        ))}
      </tbody>
      <tfoot>
        <FooterRow
          label={t.items.total}
          amountMinor={props.totalMinor}
          currency={props.currency}
          testId={props.totalTestId}
        />
        {props.children}
      </tfoot>
    </table>
  );
}

/** The first two column heads of an items table (the order's, the cart's): item and quantity. */
export function ItemAndQuantityHeads() {
  const { t } = useI18n();
  return (
    <>
      <th scope="col">{t.items.item}</th>
      <th scope="col" className="num">
        <abbr title={t.items.quantity}>{t.items.qty}</abbr>
      </th>
    </>
  );
}

/** One labelled amount under the items (Total, Captured, Refunded). */
export function FooterRow(props: { label: string; amountMinor: string; currency: string; testId?: string }) {
  const { money } = useI18n();
  return (
    <tr>
      <th scope="row" colSpan={3}>
        {props.label}
      </th>
      <td className="num" data-testid={props.testId}>
        {money(props.amountMinor, props.currency)}
      </td>
    </tr>
  );
}
