/** Every magic of the kernel, registered in one place. */
import { lsmagic } from "./builtin/lsmagic";
import { time } from "./builtin/time";
import { who } from "./builtin/who";
import { workflowMagics } from "./builtin/workflow";
import { MagicRegistry } from "./registry";

export function builtinMagics(): MagicRegistry {
  const r = new MagicRegistry();
  for (const m of [lsmagic, time, who, ...workflowMagics]) r.register(m);
  return r;
}
