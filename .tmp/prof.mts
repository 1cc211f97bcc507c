import { randomBytes } from 'node:crypto';
import { initTestToken, keyWrap } from '/work/wt/hsm/test/support/softhsm.ts';
import { sessionDekTemplate } from '/work/wt/hsm/src/kek/pkcs11-token.ts';
import pkcs11js from 'pkcs11js';
const hsm = initTestToken('prof');
const k1 = randomBytes(32), k2 = randomBytes(32);
await hsm.importKek('a', '1', k1); await hsm.importKek('a', '2', k2);
const w = keyWrap('AESWrapPad', k1, randomBytes(32));
const t = hsm.token;
await t.withSession(async (s) => {
  const a = t.findKey(s, 'a@1')!, b = t.findKey(s, 'a@2')!;
  for (const tpl of [sessionDekTemplate(), sessionDekTemplate().slice(0, 6)]) {
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) {
      const o = await t.lib.C_UnwrapKeyAsync(s, { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }, a, w, tpl);
      await t.lib.C_WrapKeyAsync(s, { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }, b, o, Buffer.alloc(128));
      t.lib.C_DestroyObject(s, o);
    }
    console.log(tpl.length, (200 / ((performance.now() - t0) / 1000)).toFixed(0), '/s');
  }
});
hsm.close();
