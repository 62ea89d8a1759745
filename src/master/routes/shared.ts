// What several route files use. Routes import it from here, never from app.ts: app.ts imports the
// routes, and the dependency goes one way.

/** preValidation for routes whose body is optional: no body at all counts as `{}`. */
export async function emptyBodyIsObject(request: { body: unknown }): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}
