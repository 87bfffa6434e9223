/**
 * The content fields of the requests a kernel answers (messaging protocol 5.3), checked before a
 * handler sees them: a request with a missing or mistyped field gets an error reply naming the field,
 * the type expected and what was received, and never reaches the session's state.
 */

type Check = (v: unknown) => boolean;
interface Field {
  check: Check;
  expected: string;
  required?: boolean;
}

const isString: Check = (v) => typeof v === "string";
const isBool: Check = (v) => typeof v === "boolean";
const isCount: Check = (v) => typeof v === "number" && Number.isInteger(v) && v >= 0;
const isInt: Check = (v) => typeof v === "number" && Number.isInteger(v);
const isObject: Check = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isStringMap: Check = (v) => isObject(v) && Object.values(v as object).every(isString);

const str = (required = false): Field => ({ check: isString, expected: "a string", required });
const bool: Field = { check: isBool, expected: "true or false" };
const count = (required = false): Field => ({ check: isCount, expected: "an integer >= 0", required });

const SCHEMAS: Record<string, Record<string, Field>> = {
  execute_request: {
    code: str(true),
    silent: bool,
    store_history: bool,
    user_expressions: { check: isStringMap, expected: "an object of strings" },
    allow_stdin: bool,
    stop_on_error: bool,
  },
  complete_request: { code: str(true), cursor_pos: count(true) },
  inspect_request: { code: str(true), cursor_pos: count(true), detail_level: { check: (v) => v === 0 || v === 1, expected: "0 or 1" } },
  is_complete_request: { code: str(true) },
  history_request: {
    hist_access_type: { check: (v) => v === "range" || v === "tail" || v === "search", expected: '"range", "tail" or "search"', required: true },
    output: bool,
    raw: bool,
    session: { check: isInt, expected: "an integer" },
    start: { check: isInt, expected: "an integer" },
    stop: { check: isInt, expected: "an integer" },
    n: count(),
    pattern: str(),
    unique: bool,
  },
  comm_info_request: { target_name: str() },
  comm_open: { comm_id: str(true), target_name: str(true), data: { check: isObject, expected: "an object" } },
  comm_msg: { comm_id: str(true), data: { check: isObject, expected: "an object" } },
  comm_close: { comm_id: str(true), data: { check: isObject, expected: "an object" } },
  input_reply: { value: str(true) },
  shutdown_request: { restart: bool },
};

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array (${JSON.stringify(v).slice(0, 60)})`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${JSON.stringify(v).slice(0, 60)}`;
}

/** undefined when the content is well formed, else the first problem, naming the field. */
export function checkContent(msgType: string, content: Record<string, unknown>): string | undefined {
  const schema = SCHEMAS[msgType];
  if (!schema) return undefined;
  for (const [name, f] of Object.entries(schema)) {
    const v = content[name];
    if (v === undefined || (v === null && !f.required)) {
      if (f.required) return `Expected content.${name} to be ${f.expected} in ${msgType} but received nothing`;
      continue;
    }
    if (!f.check(v)) return `Expected content.${name} to be ${f.expected} in ${msgType} but received ${describe(v)}`;
  }
  return undefined;
}

/** The reply type of a request type (execute_request -> execute_reply); undefined for other messages. */
export function replyType(msgType: string): string | undefined {
  return msgType.endsWith("_request") ? `${msgType.slice(0, -"_request".length)}_reply` : undefined;
}
