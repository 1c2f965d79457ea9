// A page on one origin (PAGE_URL) fetch()es portcullis on another (API_URL) as a
// browser app does: first with a bearer token (Chromium sends its own preflight,
// since Authorization is not a safelisted header), then from a route whose `cors`
// does not list the page's origin (the browser must refuse to hand the answer over).
// Prints one JSON line with what the page saw.
import { openPage } from '../support/browser.mjs';

const { browser, page } = await openPage({ intercept: false });
const out = {};
try {
  await page.goto(process.env.PAGE_URL);
  out.allowed = await page.evaluate(async ({ url, token }) => {
    const r = await fetch(url, {
      headers: { Authorization: `Bearer ${token}`, 'X-Trace': '1' },
      credentials: 'include',
    });
    return { status: r.status, body: await r.text() };
  }, { url: `${process.env.API_URL}/api/items`, token: process.env.TOKEN });
  out.unlisted = await page.evaluate(async ({ url, token }) => {
    try {
      const r = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
      return { status: r.status };
    } catch (e) {
      return { error: String(e) };
    }
  }, { url: `${process.env.API_URL}/other/items`, token: process.env.TOKEN });
} catch (e) {
  out.failure = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
