/**
 * Whether a process of this machine is still running. Linux only (elsewhere: assume it is).
 * /proc/<n> also answers for thread ids and for zombies, so a live process is one whose status
 * says it leads its own thread group and is not a zombie.
 */
export function processAlive(pid: number): boolean {
  if (Deno.build.os !== "linux") return true;
  let status: string;
  try {
    status = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return false;
  }
  const tgid = /^Tgid:\s*(\d+)$/m.exec(status)?.[1];
  const state = /^State:\s*(\S)/m.exec(status)?.[1];
  return tgid === String(pid) && state !== "Z" && state !== "X";
}
