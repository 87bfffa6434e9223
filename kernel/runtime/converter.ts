/**
 * The cell converter: TypeScript cell -> type-checked CommonJS + the declarations later cells see.
 *
 * Why not tslab's converter for this: it rebuilds a watch-mode builder program for every cell (twice
 * when the cell declares names) and then transpiles its output a second time; a one-line cell costs
 * 6-13 ms there, while a kernel has to answer a trivial cell faster than ipykernel (bench/kernel).
 * This converter keeps tslab's model of a session (every cell is a module; earlier cells' names are
 * read through the shared `exports` object; their declarations are carried as a .d.ts) and does one
 * `createProgram` per cell with structure reuse, checking and emitting only the cell. tslab's own
 * converter still answers completion and inspection (runtime/language-thread.ts).
 *
 * Per cell:
 *  - the cell's top-level names are collected from its syntax and exported (`export { ... }` is
 *    appended), so CommonJS emit writes them to `exports` and declaration emit keeps them;
 *  - the cell module sees the previous declarations through its parent chain (the cell SourceFile's
 *    `parent` is the declarations file), so shadowing a name in a new cell is allowed;
 *  - identifiers that resolve to an earlier cell's name become `exports.name`;
 *  - the last expression statement becomes `exports.__rk_last__ = (...)`;
 *  - top-level await is allowed (its diagnostics are dropped; the caller wraps the code in an async
 *    function).
 *
 * The warm path. Most of a cell's cost is the type checker's start (merging the ES2022 and Node
 * global declarations, ~1.5-3 ms), and that start does not depend on the cell: between cells, with
 * the declarations known, `prepare()` builds the program and checker for the next cell around an
 * empty placeholder. A cell that resolves no modules (no imports: most cells) is then bound and
 * checked against that checker under a name of its own, and emitted, in about a millisecond; a cell
 * that declares names changes the declarations, so the next checker is started after it. Cells that
 * import take the full path (a new program, so that their modules are resolved), and
 * test/converter.test.ts checks that both paths give the same code and the same diagnostics.
 */
import * as path from "path";

import * as ts from "@tslab/typescript-for-tslab";

import { LAST_VALUE } from "./cell";

export interface CellDiagnostic {
  /** 0-based line and character within the cell's own text. */
  line: number;
  character: number;
  messageText: string;
  code: number;
  category: number;
  fileName?: string;
}

export interface ConvertedCell {
  /** CommonJS of the cell, undefined when it has errors. */
  output?: string;
  /** Declarations of every name so far (earlier cells' not shadowed, then this cell's). */
  declOutput?: string;
  diagnostics: CellDiagnostic[];
  hasLastValue: boolean;
  hasToplevelAwait: boolean;
}

/** Diagnostics about top-level await in a CommonJS module: allowed here, the caller wraps in async. */
const TOP_LEVEL_AWAIT_CODES = new Set([1375, 1378, 1431, 1432, 2854, 1308]);

const COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  lib: ["lib.es2022.d.ts"],
  module: ts.ModuleKind.CommonJS,
  moduleResolution: ts.ModuleResolutionKind.Node10,
  esModuleInterop: true,
  declaration: true,
  skipLibCheck: true,
  noEmitOnError: false,
  experimentalDecorators: true,
  resolveJsonModule: true,
  newLine: ts.NewLineKind.LineFeed,
  noImplicitUseStrict: true,
  allowJs: false,
  jsx: ts.JsxEmit.React,
};

const PREFIX = "export {};\n";

type Meaning = "value" | "type" | "both";

/** Names a statement declares at the top level, with what they mean. */
function declaredNames(stmt: ts.Statement): { name: string; meaning: Meaning }[] {
  const out: { name: string; meaning: Meaning }[] = [];
  const bindings = (n: ts.BindingName) => {
    if (ts.isIdentifier(n)) out.push({ name: n.text, meaning: "value" });
    else for (const e of n.elements) if (!ts.isOmittedExpression(e)) bindings(e.name);
  };
  if (ts.isVariableStatement(stmt)) for (const d of stmt.declarationList.declarations) bindings(d.name);
  else if (ts.isFunctionDeclaration(stmt) && stmt.name) out.push({ name: stmt.name.text, meaning: "value" });
  else if ((ts.isClassDeclaration(stmt) || ts.isEnumDeclaration(stmt)) && stmt.name) out.push({ name: stmt.name.text, meaning: "both" });
  else if (ts.isInterfaceDeclaration(stmt) || ts.isTypeAliasDeclaration(stmt)) out.push({ name: stmt.name.text, meaning: "type" });
  else if (ts.isModuleDeclaration(stmt) && ts.isIdentifier(stmt.name)) out.push({ name: stmt.name.text, meaning: "both" });
  else if (ts.isImportEqualsDeclaration(stmt)) out.push({ name: stmt.name.text, meaning: "both" });
  else if (ts.isImportDeclaration(stmt) && stmt.importClause) {
    const c = stmt.importClause;
    if (c.name) out.push({ name: c.name.text, meaning: "both" });
    if (c.namedBindings) {
      if (ts.isNamespaceImport(c.namedBindings)) out.push({ name: c.namedBindings.name.text, meaning: "both" });
      else for (const e of c.namedBindings.elements) out.push({ name: e.name.text, meaning: "both" });
    }
  }
  return out;
}

function hasExportModifier(stmt: ts.Statement): boolean {
  return (ts.canHaveModifiers(stmt) ? ts.getModifiers(stmt) ?? [] : []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
}

function clashes(a: Meaning, b: Meaning): boolean {
  return a === "both" || b === "both" || a === b;
}

/** Text that may need module resolution (imports, exports from, references, require). */
const NEEDS_RESOLUTION = /\bimport\b|\bfrom\s*["'`]|\/\/\/\s*<reference|\brequire\s*\(/;

/** A program and started checker for the next cell, around an empty placeholder cell. */
interface Warm {
  program: ts.Program;
  checker: ts.TypeChecker;
  decl: ts.SourceFile;
  declText: string;
  uses: number;
}

/** Cells checked on one warm checker before it is rebuilt (bounds what its caches hold). */
const WARM_USES = 400;

export class CellConverter {
  private warm: Warm | undefined;
  private cellCounter = 0;
  /** Which path the last convert took (for tests and traces). */
  lastPath: "warm" | "full" = "full";
  private readonly declPath: string;
  private readonly cellPath: string;
  private readonly host: ts.CompilerHost;
  private readonly cache = new Map<string, ts.SourceFile>();
  private declFile: ts.SourceFile | undefined;
  private cellFile: ts.SourceFile | undefined;
  private oldProgram: ts.Program | undefined;
  private readonly options: ts.CompilerOptions;
  /** The same without declaration emit, for cells that declare nothing (most one-liners). */
  private readonly optionsNoDts: ts.CompilerOptions;

  constructor(
    private readonly prelude: string,
    cwd = process.cwd(),
  ) {
    this.declPath = path.join(cwd, "__prev__.d.ts");
    this.cellPath = path.join(cwd, "__cell__.ts");
    this.options = { ...COMPILER_OPTIONS, typeRoots: typeRoots(cwd), types: ["node"] };
    this.optionsNoDts = { ...this.options, declaration: false };
    const base = ts.createCompilerHost(this.options);
    this.host = {
      ...base,
      getSourceFile: (file, languageVersion) => {
        if (file === this.declPath) return this.declFile;
        if (file === this.cellPath) return this.cellFile;
        // Libraries and packages are parsed once per kernel.
        let sf = this.cache.get(file);
        if (!sf) {
          const text = ts.sys.readFile(file);
          if (text === undefined) return undefined;
          sf = ts.createSourceFile(file, text, languageVersion);
          this.cache.set(file, sf);
        }
        return sf;
      },
      fileExists: (file) => file === this.declPath || file === this.cellPath || base.fileExists(file),
      readFile: (file) => (file === this.declPath ? this.declFile?.text : file === this.cellPath ? this.cellFile?.text : base.readFile(file)),
      writeFile: () => undefined,
    };
  }

  private setDecl(prevDecl: string): string {
    const declText = `${PREFIX}${this.prelude}\n${prevDecl}`;
    if (!this.declFile || this.declFile.text !== declText) this.declFile = ts.createSourceFile(this.declPath, declText, ts.ScriptTarget.ES2022, true);
    return declText;
  }

  /**
   * Builds the program and checker the next cell will use, for these declarations (idle time).
   * Returns whether a new one was built (the old one is then garbage).
   */
  prepare(prevDecl: string): boolean {
    const declText = this.setDecl(prevDecl);
    if (this.warm && this.warm.declText === declText && this.warm.uses < WARM_USES) return false;
    this.cellFile = ts.createSourceFile(this.cellPath, PREFIX, ts.ScriptTarget.ES2022, true);
    const program = ts.createProgram({ rootNames: [this.declPath, this.cellPath], options: this.options, host: this.host, oldProgram: this.oldProgram });
    this.oldProgram = program;
    this.warm = { program, checker: program.getTypeChecker(), decl: program.getSourceFile(this.declPath)!, declText, uses: 0 };
    return true;
  }

  /** Whether a warm checker for these declarations is ready. */
  isPrepared(prevDecl: string): boolean {
    return this.warm !== undefined && this.warm.declText === `${PREFIX}${this.prelude}\n${prevDecl}` && this.warm.uses < WARM_USES;
  }

  convert(prevDecl: string, src: string, options: { path?: "auto" | "full" } = {}): ConvertedCell {
    const declText = this.setDecl(prevDecl);
    // Parse once without the export list to learn the cell's names, then with it.
    const bare = ts.createSourceFile(this.cellPath, PREFIX + src, ts.ScriptTarget.ES2022, true);
    const names = new Map<string, Meaning>();
    const alreadyExported = new Set<string>();
    for (const stmt of bare.statements) {
      for (const n of declaredNames(stmt)) {
        names.set(n.name, n.meaning);
        if (hasExportModifier(stmt)) alreadyExported.add(n.name);
      }
    }
    const toExport = [...names.keys()].filter((n) => !alreadyExported.has(n) && n !== LAST_VALUE);
    const text = toExport.length ? `${PREFIX}${src}\nexport { ${toExport.join(", ")} };\n` : PREFIX + src;
    const declaration = toExport.length > 0 || alreadyExported.size > 0;
    const warm = this.warm;
    if (options.path !== "full" && warm && warm.declText === declText && warm.uses < WARM_USES && !NEEDS_RESOLUTION.test(src)) {
      this.lastPath = "warm";
      return this.convertWarm(warm, text, { names, prevDecl, declarations: declaration });
    }
    this.lastPath = "full";
    this.cellFile = toExport.length ? ts.createSourceFile(this.cellPath, text, ts.ScriptTarget.ES2022, true) : bare;
    // Programs differing only in `declaration` still reuse each other's structure.
    const program = ts.createProgram({ rootNames: [this.declPath, this.cellPath], options: declaration ? this.options : this.optionsNoDts, host: this.host, oldProgram: this.oldProgram });
    this.oldProgram = program;
    const cell = program.getSourceFile(this.cellPath)!;
    const decl = program.getSourceFile(this.declPath)!;
    // Earlier cells' names resolve through the parent chain: cell module -> declarations module -> globals.
    (cell as { parent?: ts.Node }).parent = decl;

    return this.checkAndEmit(program, program.getTypeChecker(), cell, decl, [...program.getSyntacticDiagnostics(cell), ...program.getSemanticDiagnostics(cell)], {
      names,
      prevDecl,
      declarations: declaration,
    });
  }

  /** A cell checked on the warm checker under a name of its own (`text` is the full cell file). */
  private convertWarm(warm: Warm, text: string, carry: { names: Map<string, Meaning>; prevDecl: string; declarations: boolean }): ConvertedCell {
    warm.uses++;
    // The checker keys diagnostics by file name: a fresh name per cell keeps them apart.
    const name = this.cellPath.replace(/__cell__\.ts$/, `__cell_${++this.cellCounter}__.ts`);
    const cell = ts.createSourceFile(name, text, ts.ScriptTarget.ES2022, true);
    // What the program sets on files it loads (declaration emit computes module specifiers from them).
    Object.assign(cell, { path: name, resolvedPath: name, originalFileName: name });
    (cell as { parent?: ts.Node }).parent = warm.decl;
    (ts as unknown as { bindSourceFile(f: ts.SourceFile, o: ts.CompilerOptions): void }).bindSourceFile(cell, warm.program.getCompilerOptions());
    const parseDiagnostics = (cell as unknown as { parseDiagnostics: ts.Diagnostic[] }).parseDiagnostics ?? [];
    const checker = warm.checker as unknown as { getDiagnostics(f: ts.SourceFile): readonly ts.Diagnostic[] };
    const diagnostics = parseDiagnostics.length ? [...parseDiagnostics] : [...checker.getDiagnostics(cell)];
    return this.checkAndEmit(warm.program, warm.checker, cell, warm.decl, diagnostics, carry);
  }

  private checkAndEmit(
    program: ts.Program,
    checker: ts.TypeChecker,
    cell: ts.SourceFile,
    decl: ts.SourceFile,
    found: readonly ts.Diagnostic[],
    carry: { names: Map<string, Meaning>; prevDecl: string | undefined; declarations: boolean },
  ): ConvertedCell {
    let hasToplevelAwait = false;
    const diagnostics: CellDiagnostic[] = [];
    for (const d of found) {
      if (TOP_LEVEL_AWAIT_CODES.has(d.code)) {
        hasToplevelAwait = true;
        continue;
      }
      if (d.file && d.file !== cell) {
        diagnostics.push({ line: 0, character: 0, messageText: ts.flattenDiagnosticMessageText(d.messageText, "\n"), code: d.code, category: d.category, fileName: path.basename(d.file.fileName) });
        continue;
      }
      const pos = d.start !== undefined ? ts.getLineAndCharacterOfPosition(cell, d.start) : { line: 1, character: 0 };
      diagnostics.push({ line: pos.line - 1, character: pos.character, messageText: ts.flattenDiagnosticMessageText(d.messageText, "\n"), code: d.code, category: d.category });
    }
    if (!hasToplevelAwait) hasToplevelAwait = containsTopLevelAwait(cell);
    if (diagnostics.some((d) => d.category === ts.DiagnosticCategory.Error)) return { diagnostics, hasLastValue: false, hasToplevelAwait };

    let hasLastValue = false;
    let output = "";
    let cellDts = "";
    const emit = program.emit(
      cell,
      (file, data) => {
        if (file.endsWith(".d.ts")) cellDts = data;
        else if (file.endsWith(".js")) output = data;
      },
      undefined,
      false,
      {
        before: [
          (context) => (sf) => {
            const rewritten = rewritePrevious(sf, checker, decl, context);
            const last = lastExpression(rewritten, context);
            hasLastValue = last.found;
            return last.file;
          },
        ],
      },
    );
    void emit;
    const declOutput = carry.declarations ? carryDeclarations(decl, carry.names, cellDts) : carry.prevDecl;
    return { output, declOutput, diagnostics, hasLastValue, hasToplevelAwait };
  }
}

/** @types folders: the notebook's own node_modules/@types, else the ones this kernel ships with. */
function typeRoots(cwd: string): string[] {
  const roots = ts.getEffectiveTypeRoots({}, { getCurrentDirectory: () => cwd, directoryExists: ts.sys.directoryExists }) ?? [];
  const withNode = roots.filter((r) => ts.sys.fileExists(path.join(r, "node", "package.json")));
  if (withNode.length) return withNode;
  const ours = path.join(path.dirname(require.resolve("@types/node/package.json")), "..");
  return [ours];
}

function containsTopLevelAwait(sf: ts.SourceFile): boolean {
  let found = false;
  const visit = (n: ts.Node): void => {
    if (found) return;
    if (ts.isAwaitExpression(n) || (ts.isForOfStatement(n) && n.awaitModifier)) {
      found = true;
      return;
    }
    if (ts.isFunctionLike(n) || ts.isClassLike(n)) return;
    ts.forEachChild(n, visit);
  };
  ts.forEachChild(sf, visit);
  return found;
}

/** Identifiers that resolve to an earlier cell's top-level name -> `exports.name`. */
function rewritePrevious(sf: ts.SourceFile, checker: ts.TypeChecker, decl: ts.SourceFile, context: ts.TransformationContext): ts.SourceFile {
  const f = context.factory;
  const isPrevious = (id: ts.Identifier): boolean => {
    const sym = checker.getSymbolAtLocation(id);
    if (!sym) return false;
    const target = sym.flags & ts.SymbolFlags.Alias ? sym : sym;
    const decls = target.declarations ?? [];
    if (decls.length === 0) return false;
    return decls.every((d) => d.getSourceFile() === decl) && decls.some((d) => isTopLevelOf(d, decl)) && (target.flags & (ts.SymbolFlags.Value | ts.SymbolFlags.Alias)) !== 0;
  };
  const prop = (name: string) => f.createPropertyAccessExpression(f.createIdentifier("exports"), f.createIdentifier(name));
  const visit = (node: ts.Node): ts.Node => {
    if (ts.isTypeNode(node) || ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node)) return node;
    if (ts.isShorthandPropertyAssignment(node) && isPrevious(node.name)) {
      return f.createPropertyAssignment(node.name.text, prop(node.name.text));
    }
    if (ts.isIdentifier(node)) {
      const parent = node.parent;
      // Names, not references: property names, declaration names, labels, import/export specifiers.
      if (!parent) return node;
      if ((ts.isPropertyAccessExpression(parent) && parent.name === node) || (ts.isQualifiedName(parent) && parent.right === node)) return node;
      if (ts.isPropertyAssignment(parent) && parent.name === node) return node;
      if (declaresName(parent) && (parent as ts.NamedDeclaration).name === node) return node;
      if (ts.isBindingElement(parent) && parent.propertyName === node) return node;
      if (ts.isLabeledStatement(parent) || ts.isBreakOrContinueStatement(parent) || ts.isImportSpecifier(parent) || ts.isExportSpecifier(parent)) return node;
      if (ts.isMetaProperty(parent)) return node;
      return isPrevious(node) ? prop(node.text) : node;
    }
    return ts.visitEachChild(node, visit, context);
  };
  return ts.visitEachChild(sf, visit, context);
}

/** Nodes whose `name` is a declared name rather than a reference. */
function declaresName(n: ts.Node): boolean {
  return (
    ts.isVariableDeclaration(n) || ts.isParameter(n) || ts.isFunctionDeclaration(n) || ts.isFunctionExpression(n) || ts.isClassDeclaration(n) ||
    ts.isClassExpression(n) || ts.isEnumDeclaration(n) || ts.isEnumMember(n) || ts.isPropertyDeclaration(n) || ts.isMethodDeclaration(n) ||
    ts.isPropertySignature(n) || ts.isMethodSignature(n) || ts.isGetAccessorDeclaration(n) || ts.isSetAccessorDeclaration(n) ||
    ts.isImportClause(n) || ts.isNamespaceImport(n) || ts.isImportEqualsDeclaration(n) || ts.isModuleDeclaration(n) ||
    ts.isTypeParameterDeclaration(n) || ts.isBindingElement(n) || ts.isNamespaceExport(n) || ts.isInterfaceDeclaration(n) || ts.isTypeAliasDeclaration(n)
  );
}

function isTopLevelOf(d: ts.Declaration, sf: ts.SourceFile): boolean {
  let n: ts.Node = d;
  while (n.parent && n.parent !== sf) {
    if (ts.isFunctionLike(n.parent) || ts.isClassLike(n.parent) || ts.isModuleBlock(n.parent) || ts.isBlock(n.parent)) return false;
    n = n.parent;
  }
  return n.parent === sf;
}

/** The last statement, when it is an expression, stores its value in exports.__rk_last__. */
function lastExpression(sf: ts.SourceFile, context: ts.TransformationContext): { file: ts.SourceFile; found: boolean } {
  const f = context.factory;
  const statements = [...sf.statements];
  let i = statements.length - 1;
  while (i >= 0 && ts.isExportDeclaration(statements[i])) i--;
  if (i < 0 || !ts.isExpressionStatement(statements[i])) return { file: sf, found: false };
  const expr = (statements[i] as ts.ExpressionStatement).expression;
  statements[i] = f.createExpressionStatement(f.createAssignment(f.createPropertyAccessExpression(f.createIdentifier("exports"), LAST_VALUE), expr));
  return { file: f.updateSourceFile(sf, statements), found: true };
}

/**
 * The declarations later cells see: earlier statements whose names this cell does not redeclare
 * (in the same meaning: value or type), then this cell's own declarations.
 */
function carryDeclarations(decl: ts.SourceFile, names: Map<string, Meaning>, cellDts: string): string {
  const printer = ts.createPrinter({ newLine: ts.NewLineKind.LineFeed, removeComments: false });
  const kept: string[] = [];
  const preludeEnd = decl.text.indexOf("\n", PREFIX.length); // PREFIX then the prelude block
  void preludeEnd;
  for (const stmt of decl.statements) {
    if (ts.isExportDeclaration(stmt) || (ts.isModuleDeclaration(stmt) && stmt.name.kind === ts.SyntaxKind.Identifier && stmt.name.text === "global")) continue;
    const declared = declaredNames(stmt);
    if (declared.length === 0) continue;
    const shadowed = declared.filter((d) => names.has(d.name) && clashes(d.meaning, names.get(d.name)!));
    if (shadowed.length === 0) {
      kept.push(stmt.getText(decl));
      continue;
    }
    if (shadowed.length === declared.length) continue;
    // Keep the rest of a multi-name statement.
    const gone = new Set(shadowed.map((d) => d.name));
    if (ts.isVariableStatement(stmt)) {
      const decls = stmt.declarationList.declarations.filter((d) => !(ts.isIdentifier(d.name) && gone.has(d.name.text)));
      if (decls.length) kept.push(printer.printNode(ts.EmitHint.Unspecified, ts.factory.updateVariableStatement(stmt, stmt.modifiers, ts.factory.updateVariableDeclarationList(stmt.declarationList, decls)), decl));
    } else if (ts.isImportDeclaration(stmt) && stmt.importClause) {
      const c = stmt.importClause;
      const name = c.name && !gone.has(c.name.text) ? c.name : undefined;
      let bindings = c.namedBindings;
      if (bindings && ts.isNamespaceImport(bindings) && gone.has(bindings.name.text)) bindings = undefined;
      if (bindings && ts.isNamedImports(bindings)) {
        const elements = bindings.elements.filter((e) => !gone.has(e.name.text));
        bindings = elements.length ? ts.factory.updateNamedImports(bindings, elements) : undefined;
      }
      if (name || bindings) {
        kept.push(printer.printNode(ts.EmitHint.Unspecified, ts.factory.updateImportDeclaration(stmt, stmt.modifiers, ts.factory.updateImportClause(c, c.isTypeOnly, name, bindings), stmt.moduleSpecifier, stmt.assertClause), decl));
      }
    }
  }
  // The cell's own declarations, without its export lists.
  const dts = ts.createSourceFile("cell.d.ts", cellDts, ts.ScriptTarget.ES2022, true);
  for (const stmt of dts.statements) {
    if (ts.isExportDeclaration(stmt)) continue;
    kept.push(stmt.getText(dts));
  }
  return kept.length ? `${kept.join("\n")}\n` : "";
}
