// Opens the admin status page (STATUS_URL) in headless Chromium and prints one JSON
// line with what a person reads on it: each route row (name, token sources, request
// and denial counts), the token endpoint section (requests per built-in endpoint,
// logins by result, lockouts, signing), each issuer's keys and algorithms, the
// unmatched-request count, the last reload, and whether each section is visible.
// Every request that is not to 127.0.0.1 is aborted (the page needs none).
//
// Environment: NODE_MODULES (with playwright-core), CHROMIUM (the browser binary),
// STATUS_URL.
import { openPage } from '../support/browser.mjs';

const out = {};
const { browser, page } = await openPage();
try {
  const response = await page.goto(process.env.STATUS_URL);
  out.status = response.status();
  out.visible = {};
  for (const id of ['routes', 'token-endpoint', 'issuers', 'cache']) {
    out.visible[id] = await page.locator(`#${id}`).isVisible();
  }
  Object.assign(out, await page.evaluate(() => {
    const text = (root, sel) => {
      const el = root.querySelector(sel);
      return el ? el.textContent.trim() : null;
    };
    const num = (root, sel) => {
      const t = text(root, sel);
      return t === null ? null : Number(t);
    };
    const rows = (sel) => [...document.querySelectorAll(sel)];
    return {
      routes: rows('#routes tbody tr').map((tr) => ({
        name: tr.dataset.route,
        tokenFrom: text(tr, 'td.token-from'),
        requests: num(tr, 'td.requests'),
        denied: num(tr, 'td.denied'),
      })),
      unmatched: num(document, '#unmatched'),
      builtins: Object.fromEntries(rows('#builtins tbody tr').map((tr) => [tr.dataset.route, num(tr, 'td.requests')])),
      logins: Object.fromEntries(rows('#logins tbody tr').map((tr) => [tr.dataset.result, num(tr, 'td.num')])),
      loginsOk: num(document, '#logins-ok'),
      lockouts: num(document, '#lockouts'),
      signing: text(document, '#token-endpoint .signing'),
      issuers: rows('#issuers tbody tr').map((tr) => ({
        name: tr.dataset.issuer,
        keys: text(tr, 'td.keys'),
        algorithms: text(tr, 'td.algorithms'),
      })),
      lastReload: text(document, '#last-reload'),
      scripts: document.querySelectorAll('script').length,
      body: document.body.innerText,
    };
  }));
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
