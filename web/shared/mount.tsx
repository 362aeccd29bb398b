/** How every page starts: its root component rendered into the page's `#root`, in StrictMode. */
import { StrictMode, type ReactNode } from 'react';
import { createRoot } from 'react-dom/client';

/** Renders `page` into `#root`; a page without one is a bug in its index.html and fails loudly. */
export function mount(page: ReactNode): void {
  const root = document.getElementById('root');
  if (!root) throw new Error('this page has no #root element');
  createRoot(root).render(<StrictMode>{page}</StrictMode>);
}
