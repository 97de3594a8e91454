// 3D camera rotation in napari 0.6's Euler convention (docs/rendering.md, "Camera"):
// R = from_euler('yzx', angles) (scipy, extrinsic, degrees), view direction
// (-R[2][1], R[1][1], R[0][1]) and up (-R[2][2], R[1][2], R[0][2]) in world (z, y, x),
// screen right = view x up. A drag orbits the camera about its own up and right axes, so
// the volume turns the way the mouse moves whatever the current angles are.

const D2R = Math.PI / 180;

function rx(c) {
  const s = Math.sin(c), k = Math.cos(c);
  return [[1, 0, 0], [0, k, -s], [0, s, k]];
}
function ry(a) {
  const s = Math.sin(a), k = Math.cos(a);
  return [[k, 0, s], [0, 1, 0], [-s, 0, k]];
}
function rz(b) {
  const s = Math.sin(b), k = Math.cos(b);
  return [[k, -s, 0], [s, k, 0], [0, 0, 1]];
}
function mul(A, B) {
  const C = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  for (let i = 0; i < 3; ++i)
    for (let j = 0; j < 3; ++j)
      for (let k = 0; k < 3; ++k) C[i][j] += A[i][k] * B[k][j];
  return C;
}

// Extrinsic 'yzx': rotate about y by a, then z by b, then x by c: R = Rx(c) Rz(b) Ry(a).
export function matrixFromAngles(angles) {
  const [a, b, c] = angles.map((x) => x * D2R);
  return mul(rx(c), mul(rz(b), ry(a)));
}

// The inverse of matrixFromAngles, in degrees, b in [-90, 90].
export function anglesFromMatrix(R) {
  const sb = Math.max(-1, Math.min(1, -R[0][1]));
  const b = Math.asin(sb);
  let a, c;
  if (Math.abs(Math.cos(b)) > 1e-9) {
    a = Math.atan2(R[0][2], R[0][0]);
    c = Math.atan2(R[2][1], R[1][1]);
  } else {  // gimbal lock: only a - c (or a + c) is defined; take a = 0
    a = 0;
    c = Math.atan2(-R[1][2], R[2][2]);
  }
  return [a / D2R, b / D2R, c / D2R];
}

// World (z, y, x) <-> the matrix's own axes: w = (-m2, m1, m0), m = (w2, w1, -w0).
const toWorld = (m) => [-m[2], m[1], m[0]];
const toMatrix = (w) => [w[2], w[1], -w[0]];
const col = (R, j) => [R[0][j], R[1][j], R[2][j]];

export function cross(u, v) {
  return [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
}
function normalize(v) {
  const n = Math.hypot(v[0], v[1], v[2]) || 1;
  return [v[0] / n, v[1] / n, v[2] / n];
}

// View direction, up and screen right in world (z, y, x).
export function cameraBasis(angles) {
  const R = matrixFromAngles(angles);
  const view = toWorld(col(R, 1));
  const up = toWorld(col(R, 2));
  return {view, up, right: cross(view, up)};
}

// Euler angles for a view direction and up vector (world z, y, x).
export function anglesFromBasis(view, up) {
  const m1 = normalize(toMatrix(view));
  let m2 = toMatrix(up);
  const d = m1[0] * m2[0] + m1[1] * m2[1] + m1[2] * m2[2];
  m2 = normalize([m2[0] - d * m1[0], m2[1] - d * m1[1], m2[2] - d * m1[2]]);
  const m0 = cross(m1, m2);
  const R = [[m0[0], m1[0], m2[0]], [m0[1], m1[1], m2[1]], [m0[2], m1[2], m2[2]]];
  return anglesFromMatrix(R);
}

// Orbits the camera: `yaw` degrees about the screen's up axis (a horizontal drag to the
// right turns the volume to the right), `pitch` degrees about its right axis (a drag down
// tilts the top of the volume towards the viewer). Returns new angles.
export function orbit(angles, yaw, pitch) {
  let {view, up, right} = cameraBasis(angles);
  const ty = yaw * D2R, tp = pitch * D2R;
  // Turning the volume right = moving the eye left: the view direction turns towards right.
  view = normalize(view.map((v, i) => v * Math.cos(ty) + right[i] * Math.sin(ty)));
  // Tilting the top towards the viewer = moving the eye up: view turns away from up.
  const v2 = view.map((v, i) => v * Math.cos(tp) - up[i] * Math.sin(tp));
  const u2 = up.map((u, i) => u * Math.cos(tp) + view[i] * Math.sin(tp));
  const out = anglesFromBasis(v2, u2);
  return out.map((x) => Math.round(x * 1e6) / 1e6);
}
