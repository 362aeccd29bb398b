/** The shop API's answers as the storefront pages read them (apps/shop/src/routes). */
export interface Product {
  id: string;
  name: string;
  description: string;
  unit_price_minor: string;
  currency: string;
}

export interface Cart {
  id: string;
  status: 'open' | 'checked_out';
  currency: string | null;
  items: Array<{ product_id: string; name: string; quantity: number; unit_price_minor: string; line_total_minor: string }>;
  total_minor: string;
}

export interface CheckoutResult {
  order_id: string;
  payment_request_id: string;
  payment_link: string;
  status: string;
}

export interface Order {
  id: string;
  status: string;
  currency: string;
  amount_minor: string;
  captured_minor: string;
  payment_request_id: string | null;
  payment_link: string | null;
  authorization_id: string | null;
  decline_code: string | null;
  lines: Array<{ product_id: string; description: string; quantity: number; unit_price_minor: string }>;
  created_at: string;
  /** All refunds so far. */
  refunded_minor: string;
}
