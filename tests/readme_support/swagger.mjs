// Drives Swagger UI (FastAPI's /docs, opened through portcullis) in headless Chromium
// the way a person does: "Authorize" with a username and password (Swagger posts the
// OAuth2 password form to the app's tokenUrl, which portcullis answers), then
// "Try it out" -> "Execute" on one operation. Prints one JSON line with what the page
// showed: {authorized, authError, validationErrors, status, body, requests}. `requests`
// lists the page's requests to 127.0.0.1 with whether they carried an Authorization
// header (never its value). Every request elsewhere (CDN, favicon, validator) is aborted.
//
// Environment: NODE_MODULES (with playwright-core), CHROMIUM (the browser binary),
// DOCS_URL, USERNAME, PASSWORD, OP_PATH (the operation's path, e.g. /users/me/).
import { openPage } from '../support/browser.mjs';

const out = { authorized: false, authError: null, validationErrors: null, status: null, body: null, requests: [] };
const { browser, page } = await openPage();
try {
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (url.hostname === '127.0.0.1') {
      out.requests.push({ method: r.method(), path: url.pathname, authorization: (r.headers().authorization || '').split(' ')[0] });
    }
  });
  await page.goto(process.env.DOCS_URL);

  // Authorize: the lock button at the top, then the OAuth2 password form in the modal.
  await page.locator('.scheme-container button.authorize').click();
  const modal = page.locator('.modal-ux');
  await modal.locator('#oauth_username').fill(process.env.USERNAME);
  await modal.locator('#oauth_password').fill(process.env.PASSWORD);
  await modal.locator('.auth-btn-wrapper button.authorize').click();
  const loggedIn = modal.locator('.auth-btn-wrapper button', { hasText: 'Logout' });
  const failed = modal.locator('.errors');
  await Promise.race([loggedIn.waitFor(), failed.waitFor()]);
  out.authorized = await loggedIn.isVisible();
  if (!out.authorized) out.authError = (await failed.innerText()).trim();
  await modal.locator('button.btn-done').click();

  // Try it out -> Execute on the operation.
  const op = page.locator('.opblock', { has: page.locator(`.opblock-summary-path[data-path="${process.env.OP_PATH}"]`) });
  await op.locator('.opblock-summary').click();
  await op.locator('button.try-out__btn').click();
  await op.locator('button.execute').click();
  const response = op.locator('.live-responses-table .response');
  const invalid = op.locator('.validation-errors');
  await Promise.race([response.first().waitFor(), invalid.waitFor()]);
  if (await invalid.isVisible()) {
    out.validationErrors = (await invalid.innerText()).trim();
  } else {
    out.status = (await response.first().locator('.response-col_status').innerText()).trim();
    out.body = (await response.first().locator('.response-col_description .microlight').first().innerText()).trim();
  }
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
