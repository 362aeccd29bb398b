/** How every page starts: its root component rendered into the page's `#root`, in StrictMode. */
import { StrictMode, type ReactNode } from 'react';
import { createRoot } from 'react-dom/client';
import { I18nProvider } from './i18n.tsx';

/**
 * Renders `page` into `#root`; a page without one is a bug in its index.html and fails loudly.
 * With `{ i18n: true }` the page speaks Japanese and English (web/shared/i18n.tsx).
 */
export function mount(page: ReactNode, options: { i18n?: boolean } = {}): void {
  const root = document.getElementById('root');
  if (!root) throw new Error('this page has no #root element');
  createRoot(root).render(<StrictMode>{options.i18n ? <I18nProvider>{page}</I18nProvider> : page}</StrictMode>);
}
