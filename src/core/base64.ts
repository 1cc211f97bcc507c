/** Base64 as the S3 Encryption Client and our keyring write it: strict, so a typo is an error, not other bytes. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function decodeBase64Strict(text: string): Buffer | undefined {
  const t = text.trim();
  if (t.length === 0 || !BASE64.test(t)) return undefined;
  return Buffer.from(t, 'base64');
}
