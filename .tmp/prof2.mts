import { randomBytes } from 'node:crypto';
import { initTestToken, keyWrap } from '/work/wt/hsm/test/support/softhsm.ts';
import { Pkcs11KekProvider } from '/work/wt/hsm/src/kek/pkcs11-kek-provider.ts';
const hsm = initTestToken('prof2');
const k1 = randomBytes(32), k2 = randomBytes(32);
await hsm.importKek('a', '1', k1); await hsm.importKek('a', '2', k2);
const p = new Pkcs11KekProvider(hsm.token);
const w = keyWrap('AESWrapPad', k1, randomBytes(32));
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  for (let i = 0; i < 200; i++) await p.rewrap({ wrapAlg: 'AESWrapPad', cekAlg: 'x', wrapped: w, matdesc: {}, kek: { id: 'a', version: '1' } }, { id: 'a', version: '1' }, { id: 'a', version: '2' });
  console.log((200 / ((performance.now() - t0) / 1000)).toFixed(0), '/s');
}
const ws = Array.from({ length: 200 }, () => keyWrap('AESWrapPad', k1, randomBytes(32)));
const t0 = performance.now();
for (const x of ws) await p.rewrap({ wrapAlg: 'AESWrapPad', cekAlg: 'x', wrapped: x, matdesc: {}, kek: { id: 'a', version: '1' } }, { id: 'a', version: '1' }, { id: 'a', version: '2' });
console.log('distinct', (200 / ((performance.now() - t0) / 1000)).toFixed(0), '/s');
hsm.close();
