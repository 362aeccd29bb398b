/** Card-number and expiry checks shared by the wallet (early feedback) and the authentication server (the rule). */

/** Luhn check over 12–19 digits. */
export function isValidCardNumber(pan: string): boolean {
  if (!/^[0-9]{12,19}$/.test(pan)) return false;
  let sum = 0;
  for (let i = 0; i < pan.length; i++) {
    let digit = pan.charCodeAt(pan.length - 1 - i) - 48;
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

/** Card numbers are typed with spaces or dashes; the rule works on digits only. */
export function normalizeCardNumber(input: string): string {
  return input.replace(/[\s-]/g, '');
}

export const expiryPattern = /^(0[1-9]|1[0-2])\/([0-9]{2})$/;

/** An expiry `MM/YY` is valid through the last day of that month (UTC). */
export function isExpired(expiry: string, now: Date): boolean {
  const match = expiryPattern.exec(expiry);
  if (!match) return true;
  const month = Number(match[1]);
  const year = 2000 + Number(match[2]);
  const firstOfNextMonth = Date.UTC(year, month, 1);
  return now.getTime() >= firstOfNextMonth;
}
