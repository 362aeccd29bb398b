/** Shown once after enrollment: the recovery code that revokes the credential from any device. */
import { useEffect, useRef } from 'react';
import { useI18n } from '../../shared/i18n.tsx';

export function RecoveryCode({ code, onDone }: { code: string; onDone: () => void }) {
  const t = useI18n().t.wallet.recovery;
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <section className="card" aria-labelledby="recovery-title">
      <h2 id="recovery-title" ref={heading} tabIndex={-1}>
        {t.title}
      </h2>
      <p>{t.intro}</p>
      <p className="mono" style={{ fontSize: '1.3rem' }} data-testid="recovery-code">
        {code}
      </p>
      <button type="button" onClick={onDone}>
        {t.done}
      </button>
    </section>
  );
}
