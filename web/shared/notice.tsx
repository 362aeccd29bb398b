/** A failure the page must announce: the red notice, read out at once by screen readers. */
import type { ReactNode } from 'react';

export function ErrorNotice(props: { children: ReactNode }) {
  return (
    <div className="notice bad" role="alert">
      {props.children}
    </div>
  );
}
