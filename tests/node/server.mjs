// A real `snug serve` child process for the node tests: started on a free port (--port 0), its
// port read from the "listening on HOST:PORT" line, stopped with SIGTERM.
import { spawn } from 'node:child_process';

export function startServer(snug, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(snug, ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${err}`)), 120000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on ([^\s]+):(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[2]) });
      }
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${err}`));
    });
  });
}

export async function stopServer(server) {
  if (!server) return;
  const { child } = server;
  // The start-up listener would reject a settled promise; drop it before waiting for the exit.
  child.removeAllListeners('exit');
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}
