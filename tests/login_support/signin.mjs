// The whole browser sign-in for tests/login.rs, in Debian's chromium (headless,
// through tests/support/browser.mjs): open $START_URL (a login = true route behind
// portcullis), sign in on the provider's login page as $LOGIN, accept the consent
// page, and land on the app's page (the echo upstream: it shows the identity headers
// it received); then $LOGOUT_URL, the provider's "sign me out" confirmation, and
// $START_URL again, which must show the provider's login form, not the app.
// Prints one JSON line: what was seen at each step.
import { openPage } from '../support/browser.mjs';

const out = { ok: false };
const { browser, page } = await openPage();
try {
  await page.goto(process.env.START_URL);
  out.loginPage = page.url();
  await page.fill('input[name=login]', process.env.LOGIN);
  await page.fill('input[name=password]', 'any password');
  await page.click('button[type=submit]');
  await page.waitForLoadState();
  if (await page.locator('button:has-text("Continue")').count()) {
    await Promise.all([page.waitForNavigation(), page.click('button:has-text("Continue")')]);
  }
  await page.waitForURL((u) => u.toString().startsWith(process.env.APP_ORIGIN));
  out.appUrl = page.url();
  out.appText = await page.locator('body').innerText();
  out.cookies = (await page.context().cookies()).filter((c) => c.domain === '127.0.0.1')
    .map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure, size: c.value.length }));
  await page.goto(process.env.LOGOUT_URL);
  out.logoutPage = page.url();
  const yes = page.locator('button[name=logout][value=yes]');
  if (await yes.count()) {
    await Promise.all([page.waitForNavigation(), yes.click()]);
  }
  out.afterLogout = page.url();
  await page.goto(process.env.START_URL);
  out.againUrl = page.url();
  out.againHasLoginForm = (await page.locator('input[name=login]').count()) > 0;
  out.ok = true;
} catch (e) {
  out.error = String(e && e.stack || e);
  out.html = await page.content().catch(() => '');
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
