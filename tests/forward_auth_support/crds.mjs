// Validates custom resources against their projects' CRD schemas, as compiled into
// the @kubernetes-models packages (npm; scripts/test-all.sh installs them).
// Usage: node crds.mjs MODELS_DIR < documents.json   (a JSON array of resources)
// Prints one "ok KIND/NAME" line per valid resource; exits 1 on the first invalid or
// unknown one (a resource of a kind without a schema is an error, never skipped).
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modelsDir] = process.argv.slice(2);
const docs = JSON.parse(readFileSync(0, "utf8"));
const packages = [
  [/\.istio\.io$/, "istio"],
  [/^traefik\.io$/, "traefik"],
];
for (const doc of docs) {
  const [group, version] = String(doc.apiVersion).split("/");
  const pkg = packages.find(([re]) => re.test(group))?.[1];
  const file = pkg && join(modelsDir, "node_modules/@kubernetes-models", pkg, group, version ?? "", `${doc.kind}.js`);
  const what = `${doc.apiVersion} ${doc.kind}/${doc.metadata?.name}`;
  if (!file || !existsSync(file)) {
    console.error(`no schema for ${what} (looked for ${file})`);
    process.exit(1);
  }
  const mod = await import(pathToFileURL(file).href);
  try {
    new mod[doc.kind](doc).validate();
  } catch (e) {
    console.error(`${what} is invalid: ${e.message}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}
