/**
 * Comms: the registry of comm targets (the display layer registers targets, e.g. for live widgets)
 * and of open comms, for comm_open / comm_msg / comm_close / comm_info_request in both directions.
 */
import { randomUUID } from "crypto";

export interface Comm {
  readonly id: string;
  readonly targetName: string;
  /** Sends comm_msg to the frontend. */
  send(data: unknown, buffers?: Uint8Array[]): void;
  /** Closes from the kernel side (comm_close to the frontend). */
  close(data?: unknown): void;
  onMessage(handler: (data: unknown, buffers: Buffer[]) => void): void;
  onClose(handler: (data: unknown) => void): void;
}

export type CommTarget = (comm: Comm, openData: unknown, buffers: Buffer[]) => void;

/** Comms as cells use them (the global `comms`). */
export interface CommsApi {
  /** Registers a target the frontend can open comms to. */
  registerTarget(name: string, target: CommTarget): void;
  /** Opens a comm to a target the frontend registered. */
  open(targetName: string, data?: unknown, metadata?: Record<string, unknown>): Comm;
}

export interface CommSender {
  send(msgType: "comm_open" | "comm_msg" | "comm_close", content: Record<string, unknown>, buffers?: Uint8Array[]): void;
}

class CommImpl implements Comm {
  closed = false;
  messageHandlers: ((data: unknown, buffers: Buffer[]) => void)[] = [];
  closeHandlers: ((data: unknown) => void)[] = [];
  constructor(
    readonly id: string,
    readonly targetName: string,
    private readonly manager: CommManager,
  ) {}
  send(data: unknown, buffers?: Uint8Array[]): void {
    if (this.closed) throw Object.assign(new Error(`Expected an open comm but ${this.id} (${this.targetName}) is closed`), { code: "ERR_RK_COMM" });
    this.manager.sender.send("comm_msg", { comm_id: this.id, data: data ?? {} }, buffers);
  }
  close(data?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.manager.sender.send("comm_close", { comm_id: this.id, data: data ?? {} });
    this.manager.forget(this.id);
  }
  onMessage(h: (data: unknown, buffers: Buffer[]) => void): void {
    this.messageHandlers.push(h);
  }
  onClose(h: (data: unknown) => void): void {
    this.closeHandlers.push(h);
  }
}

export class CommManager {
  private readonly targets = new Map<string, CommTarget>();
  private readonly comms = new Map<string, CommImpl>();

  constructor(readonly sender: CommSender) {}

  registerTarget(name: string, target: CommTarget): void {
    this.targets.set(name, target);
  }

  unregisterTarget(name: string): void {
    this.targets.delete(name);
  }

  /** Opens a comm from the kernel side. */
  open(targetName: string, data: unknown = {}, metadata: Record<string, unknown> = {}): Comm {
    const comm = new CommImpl(randomUUID(), targetName, this);
    this.comms.set(comm.id, comm);
    this.sender.send("comm_open", { comm_id: comm.id, target_name: targetName, data, metadata });
    return comm;
  }

  /** comm_open from the frontend; false when no such target is registered (caller closes it). */
  handleOpen(content: { comm_id?: string; target_name?: string; data?: unknown }, buffers: Buffer[]): boolean {
    const target = content.target_name ? this.targets.get(content.target_name) : undefined;
    if (!target || !content.comm_id) return false;
    const comm = new CommImpl(content.comm_id, content.target_name!, this);
    this.comms.set(comm.id, comm);
    target(comm, content.data, buffers);
    return true;
  }

  handleMessage(content: { comm_id?: string; data?: unknown }, buffers: Buffer[]): boolean {
    const comm = content.comm_id ? this.comms.get(content.comm_id) : undefined;
    if (!comm) return false;
    for (const h of comm.messageHandlers) h(content.data, buffers);
    return true;
  }

  handleClose(content: { comm_id?: string; data?: unknown }): boolean {
    const comm = content.comm_id ? this.comms.get(content.comm_id) : undefined;
    if (!comm) return false;
    comm.closed = true;
    this.comms.delete(comm.id);
    for (const h of comm.closeHandlers) h(content.data);
    return true;
  }

  forget(id: string): void {
    this.comms.delete(id);
  }

  info(targetName?: string): Record<string, { target_name: string }> {
    const out: Record<string, { target_name: string }> = {};
    for (const c of this.comms.values()) {
      if (!targetName || c.targetName === targetName) out[c.id] = { target_name: c.targetName };
    }
    return out;
  }
}
