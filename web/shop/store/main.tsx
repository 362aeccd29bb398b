/**
 * The storefront (role 50's pages): the catalogue with pictures, a cart, and checkout — either a
 * payment link (shown with a QR code on the order page, for a phone) or a push to a wallet handle.
 * Checkout leads to the order page, which follows the payment live.
 */
import { useEffect, useState, type FormEvent } from 'react';
import '../../shared/ui.css';
import { api, describeError } from '../../shared/api.ts';
import { money } from '../../shared/format.ts';
import { mount } from '../../shared/mount.tsx';
import { productPicture } from '../pictures.ts';
import type { Cart, CheckoutResult, Product } from '../types.ts';

const cartKey = 'kessai.cart';
const handlePattern = /^cred_[0-9a-hjkmnp-tv-z]{26}$/;

function Store() {
  const [products, setProducts] = useState<Product[] | null>(null);
  const [cart, setCart] = useState<Cart | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [announce, setAnnounce] = useState('');
  const [busy, setBusy] = useState(false);
  const [mode, setMode] = useState<'link' | 'wallet'>('link');
  const [handle, setHandle] = useState('');
  const [handleError, setHandleError] = useState<string | null>(null);

  useEffect(() => {
    api<{ products: Product[] }>('GET', '/api/products').then(
      (list) => setProducts(list.products),
      (err: unknown) => setError(`The catalogue cannot be loaded: ${describeError(err)}`),
    );
    const saved = sessionStorage.getItem(cartKey);
    if (saved) {
      api<Cart>('GET', `/api/carts/${encodeURIComponent(saved)}`).then(
        (found) => (found.status === 'open' ? setCart(found) : sessionStorage.removeItem(cartKey)),
        () => sessionStorage.removeItem(cartKey),
      );
    }
  }, []);

  async function add(product: Product) {
    setBusy(true);
    setError(null);
    try {
      let current = cart;
      if (!current) {
        current = await api<Cart>('POST', '/api/carts', { body: {} });
        sessionStorage.setItem(cartKey, current.id);
      }
      const updated = await api<Cart>('POST', `/api/carts/${current.id}/items`, { body: { product_id: product.id, quantity: 1 } });
      setCart(updated);
      setAnnounce(`${product.name} added. Cart total ${money(updated.total_minor, updated.currency ?? product.currency)}.`);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  }

  async function checkout(event: FormEvent) {
    event.preventDefault();
    if (!cart) return;
    const trimmed = handle.trim();
    if (mode === 'wallet' && !handlePattern.test(trimmed)) {
      setHandleError('A wallet handle is the credential id the wallet shows: cred_ followed by 26 letters and digits.');
      return;
    }
    setHandleError(null);
    setBusy(true);
    setError(null);
    try {
      const result = await api<CheckoutResult>('POST', `/api/carts/${cart.id}/checkout`, { body: mode === 'wallet' ? { wallet_handle: trimmed } : {} });
      sessionStorage.removeItem(cartKey);
      location.assign(`../order/?id=${encodeURIComponent(result.order_id)}`);
    } catch (err) {
      setError(`Checkout failed: ${describeError(err)}`);
      setBusy(false);
    }
  }

  const count = cart?.items.reduce((sum, item) => sum + item.quantity, 0) ?? 0;
  return (
    <>
      <a className="skip" href="#cart">Skip to the cart</a>
      <header className="bar">
        <h1>Kessai Tea House</h1>
        <span className="sub">a demonstration shop paid through Kessai</span>
        <nav aria-label="Shop">
          <a href="#cart">Cart ({count})</a>
        </nav>
      </header>
      <main>
        <p className="sr-only" aria-live="polite">{announce}</p>
        {error && (
          <div className="notice bad" role="alert">
            {error}
          </div>
        )}
        <div className="layout">
          <section aria-labelledby="products-title">
            <h2 id="products-title">Products</h2>
            {!products && !error && <p>Loading the catalogue…</p>}
            <ul className="grid" style={{ listStyle: 'none', padding: 0, margin: 0 }}>
              {products?.map((product) => (
                <li key={product.id} className="product" data-product={product.id}>
                  <img src={productPicture(product.id, product.name)} alt="" width={240} height={200} />
                  <div className="body">
                    <h3>{product.name}</h3>
                    <p>{product.description}</p>
                    <div className="row" style={{ marginTop: 'auto', justifyContent: 'space-between' }}>
                      <span className="price">{money(product.unit_price_minor, product.currency)}</span>
                      <button type="button" disabled={busy} onClick={() => void add(product)} aria-label={`Add ${product.name} to the cart`}>
                        Add to cart
                      </button>
                    </div>
                  </div>
                </li>
              ))}
            </ul>
          </section>
          <aside id="cart" className="card" aria-labelledby="cart-title" tabIndex={-1}>
            <h2 id="cart-title">Cart</h2>
            {!cart || cart.items.length === 0 ? (
              <p className="muted">The cart is empty.</p>
            ) : (
              <>
                <table>
                  <caption className="sr-only">Items in the cart</caption>
                  <thead>
                    <tr>
                      <th scope="col">Item</th>
                      <th scope="col" className="num">Qty</th>
                      <th scope="col" className="num">Amount</th>
                    </tr>
                  </thead>
                  <tbody>
                    {cart.items.map((item) => (
                      <tr key={item.product_id}>
                        <td>{item.name}</td>
                        <td className="num">{item.quantity}</td>
                        <td className="num">{money(item.line_total_minor, cart.currency ?? '')}</td>
                      </tr>
                    ))}
                  </tbody>
                  <tfoot>
                    <tr>
                      <th scope="row" colSpan={2}>Total</th>
                      <td className="num" data-testid="cart-total">{money(cart.total_minor, cart.currency ?? '')}</td>
                    </tr>
                  </tfoot>
                </table>
                <form onSubmit={(event) => void checkout(event)} noValidate style={{ marginTop: '1rem' }}>
                  <fieldset style={{ border: 'none', padding: 0, margin: '0 0 1rem' }}>
                    <legend style={{ fontWeight: 700, marginBottom: '.4rem' }}>How to pay</legend>
                    <label style={{ fontWeight: 400 }}>
                      <input type="radio" name="mode" value="link" checked={mode === 'link'} onChange={() => setMode('link')} /> Payment link and QR code (open it in your
                      wallet or on your phone)
                    </label>
                    <label style={{ fontWeight: 400 }}>
                      <input type="radio" name="mode" value="wallet" checked={mode === 'wallet'} onChange={() => setMode('wallet')} /> Send it to my wallet
                    </label>
                  </fieldset>
                  {mode === 'wallet' && (
                    <div className="field">
                      <label htmlFor="handle">Wallet handle</label>
                      <input
                        id="handle"
                        value={handle}
                        onChange={(event) => setHandle(event.target.value)}
                        autoComplete="off"
                        spellCheck={false}
                        aria-invalid={handleError ? true : undefined}
                        aria-describedby="handle-hint handle-error"
                      />
                      <p id="handle-hint" className="hint">
                        The credential id your wallet shows (cred_…).
                      </p>
                      {handleError && (
                        <p id="handle-error" className="error" role="alert">
                          {handleError}
                        </p>
                      )}
                    </div>
                  )}
                  <button type="submit" disabled={busy} style={{ width: '100%' }}>
                    Check out {money(cart.total_minor, cart.currency ?? '')}
                  </button>
                </form>
              </>
            )}
          </aside>
        </div>
      </main>
    </>
  );
}

mount(<Store />);
