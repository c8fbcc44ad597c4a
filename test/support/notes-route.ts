// The one privileged route the revocation tests and the revocation bench send their grants to:
// low sensitivity, so the grant alone (no posture) admits a request, and a revoked grant is the
// only thing that can refuse it.
export const NOTES_ROUTES = `routes:
  - name: notes
    match: { methods: [POST], path: /notes }
    action: notes.write
    resource: note
    sensitivity: low
`;
