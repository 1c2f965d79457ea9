// Validates custom resources against their projects' CRD schemas, as the
// @kubernetes-models npm packages carry them (scripts/test-all.sh installs them with
// typescript into MODELS_DIR):
// 1. the JSON-schema validator each model ships (types, enums, required fields);
// 2. TypeScript's excess-property check of each resource against the model's
//    interface, generated from the same schema: a misspelt or unknown field is an
//    error, as `kubectl apply` (field validation Strict) makes it. IstioOperator's
//    model types no `spec` (Istio's CRD leaves it free-form): step 1 only.
// Usage: node crds.mjs MODELS_DIR < documents.json   (a JSON array of resources)
// Prints one "ok ..." line per valid resource; exits 1 on an invalid one or one of a
// kind without a schema (never skipped).
import { readFileSync, existsSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { spawnSync } from "node:child_process";

const [modelsDir] = process.argv.slice(2);
const docs = JSON.parse(readFileSync(0, "utf8"));
const packages = [
  [/\.istio\.io$/, "istio"],
  [/^traefik\.io$/, "traefik"],
];
const untyped = new Set(["IstioOperator"]);
const typed = [];
for (const doc of docs) {
  const [group, version] = String(doc.apiVersion).split("/");
  const pkg = packages.find(([re]) => re.test(group))?.[1];
  const module = pkg && `@kubernetes-models/${pkg}/${group}/${version ?? ""}/${doc.kind}`;
  const file = module && join(modelsDir, "node_modules", `${module}.js`);
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
  if (!untyped.has(doc.kind)) typed.push({ module, doc, what });
}
const ts = typed
  .map(({ module, doc }, i) => `import type { I${doc.kind} as T${i} } from "${module}";\n` +
    `export const d${i}: T${i} = ${JSON.stringify(doc)};\n`)
  .join("");
const tsFile = join(modelsDir, `forward-auth-check-${process.pid}.ts`);
writeFileSync(tsFile, ts);
const tsc = spawnSync(process.execPath, [join(modelsDir, "node_modules/typescript/bin/tsc"),
  "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext",
  "--skipLibCheck", tsFile], { encoding: "utf8" });
rmSync(tsFile, { force: true });
if (tsc.status !== 0) {
  console.error(`unknown or mistyped fields (TypeScript against the CRD models):\n${tsc.stdout}${tsc.stderr}`);
  process.exit(1);
}
for (const doc of docs) {
  const how = untyped.has(doc.kind) ? "schema" : "schema+fields";
  console.log(`ok ${how} ${doc.apiVersion} ${doc.kind}/${doc.metadata?.name}`);
}
