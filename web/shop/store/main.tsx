/**
 * The storefront (role 50's pages): the catalogue with pictures, a cart, and checkout — either a
 * payment link (shown with a QR code on the order page, for a phone) or a push to a wallet handle.
 * Checkout leads to the order page, which follows the payment live.
 */
import { useEffect, useState, type FormEvent } from 'react';
import '../../shared/ui.css';
import { api, describeError } from '../../shared/api.ts';
import { LanguageSwitch, useI18n, useTitle } from '../../shared/i18n.tsx';
import { mount } from '../../shared/mount.tsx';
import { ItemAndQuantityHeads } from '../../shared/line-items.tsx';
import { productPicture } from '../pictures.ts';
import type { Cart, CheckoutResult, Product } from '../types.ts';
import { ErrorNotice } from '../../shared/notice.tsx';

const cartKey = 'kessai.cart';
const handlePattern = /^cred_[0-9a-hjkmnp-tv-z]{26}$/;

function Store() {
  const { t, money } = useI18n();
  useTitle(t.store.title);
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
      (err: unknown) => setError(t.store.catalogueFailed(describeError(err))),
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
      setAnnounce(t.store.added(product.name, money(updated.total_minor, updated.currency ?? product.currency)));
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
      setHandleError(t.store.handleInvalid);
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
      setError(t.store.checkoutFailed(describeError(err)));
      setBusy(false);
    }
  }

  const count = cart?.items.reduce((sum, item) => sum + item.quantity, 0) ?? 0;
  return (
    <>
      <a className="skip" href="#cart">
        {t.store.skipToCart}
      </a>
      <header className="bar">
        <h1>{t.shopName}</h1>
        <span className="sub">{t.store.tagline}</span>
        <nav aria-label={t.store.navLabel}>
          <a href="#cart">{t.store.cartLink(count)}</a>
        </nav>
        <LanguageSwitch />
      </header>
      <main>
        <p className="sr-only" aria-live="polite">{announce}</p>
        {error && <ErrorNotice>{error}</ErrorNotice>}
        <div className="layout">
          <section aria-labelledby="products-title">
            <h2 id="products-title">{t.store.products}</h2>
            {!products && !error && <p>{t.store.loading}</p>}
            <ul className="grid" style={{ listStyle: 'none', padding: 0, margin: 0 }}>
              {products?.map((product) => (
                <li key={product.id} className="product" data-product={product.id}>
                  <img src={productPicture(product.id, product.name)} alt="" width={240} height={200} />
                  <div className="body">
                    <h3>{product.name}</h3>
                    <p>{product.description}</p>
                    <div className="row" style={{ marginTop: 'auto', justifyContent: 'space-between' }}>
                      <span className="price">{money(product.unit_price_minor, product.currency)}</span>
                      <button type="button" disabled={busy} onClick={() => void add(product)} aria-label={t.store.addLabel(product.name)}>
                        {t.store.addToCart}
                      </button>
                    </div>
                  </div>
                </li>
              ))}
            </ul>
          </section>
          <aside id="cart" className="card" aria-labelledby="cart-title" tabIndex={-1}>
            <h2 id="cart-title">{t.store.cart}</h2>
            {!cart || cart.items.length === 0 ? (
              <p className="muted">{t.store.cartEmpty}</p>
            ) : (
              <>
                <table>
                  <caption className="sr-only">{t.store.cartCaption}</caption>
                  <thead>
                    <tr>
                      <ItemAndQuantityHeads />
                      <th scope="col" className="num">{t.items.amount}</th>
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
                      <th scope="row" colSpan={2}>
                        {t.items.total}
                      </th>
                      <td className="num" data-testid="cart-total">{money(cart.total_minor, cart.currency ?? '')}</td>
                    </tr>
                  </tfoot>
                </table>
                <form onSubmit={(event) => void checkout(event)} noValidate style={{ marginTop: '1rem' }}>
                  <fieldset style={{ border: 'none', padding: 0, margin: '0 0 1rem' }}>
                    <legend style={{ fontWeight: 700, marginBottom: '.4rem' }}>{t.store.howToPay}</legend>
                    <label style={{ fontWeight: 400 }}>
                      <input type="radio" name="mode" value="link" checked={mode === 'link'} onChange={() => setMode('link')} /> {t.store.payByLink}
                    </label>
                    <label style={{ fontWeight: 400 }}>
                      <input type="radio" name="mode" value="wallet" checked={mode === 'wallet'} onChange={() => setMode('wallet')} /> {t.store.payToWallet}
                    </label>
                  </fieldset>
                  {mode === 'wallet' && (
                    <div className="field">
                      <label htmlFor="handle">{t.store.walletHandle}</label>
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
                        {t.store.handleHint}
                      </p>
                      {handleError && (
                        <p id="handle-error" className="error" role="alert">
                          {handleError}
                        </p>
                      )}
                    </div>
                  )}
                  <button type="submit" disabled={busy} style={{ width: '100%' }}>
                    {t.store.checkOut(money(cart.total_minor, cart.currency ?? ''))}
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

mount(<Store />, { i18n: true });
