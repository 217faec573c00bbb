"""Target streams for #35 as npz files (images in time order; `distribution`, the truth per row)."""
import numpy as np, sys
sys.path.insert(0, "/work/main")
from tf_lifelong.data import sources
train = sources.load_source("mnist", "/work/shared/data").train
by = {d: train.images[train.labels == d] for d in range(10)}
used = {d: 0 for d in range(10)}
def take(d, n):
  x = by[d][used[d]:used[d] + n]; used[d] += n; assert len(x) == n; return x
def save(path, parts):
  images = np.concatenate([p[0] for p in parts]); dist = np.concatenate([p[1] for p in parts])
  np.savez(path, images=images, distribution=dist.astype(np.int64)); print(path, images.shape, np.bincount(dist))
# (a) changes inside chunks: digits 0,1,2,0,3,1 with lengths that are not multiples of 1000
seq = [(0, 2300), (1, 1700), (2, 2650), (0, 1450), (3, 2200), (1, 1900)]
save("/tmp/tgt/inside.npz", [(take(d, n), np.full(n, d)) for d, n in seq])
# (b) gradual: 4s (3000), mixes of 20..80% nines (1000 each), 9s (3000), then 4s again (800)
rng = np.random.default_rng(0)
parts = [(take(4, 3000), np.full(3000, 4))]
for pi in (0.2, 0.4, 0.6, 0.8):
  q = int(1000 * pi); x = np.concatenate([take(4, 1000 - q), take(9, q)]); y = np.repeat([4, 9], [1000 - q, q])
  p = rng.permutation(1000); parts.append((x[p], y[p]))
parts += [(take(9, 3000), np.full(3000, 9)), (take(4, 800), np.full(800, 4))]
save("/tmp/tgt/gradual.npz", parts)
# (c) unlabelled, two days: day 1 digits 5,6,5 ; day 2 digits 6,7,5 (images only, and the truth beside)
day1 = [(5, 2000), (6, 2000), (5, 1000)]
day2 = [(6, 1000), (7, 2000), (5, 1000)]
for name, seq in (("day1", day1), ("day2", day2)):
  parts = [(take(d, n), np.full(n, d)) for d, n in seq]
  images = np.concatenate([p[0] for p in parts]); dist = np.concatenate([p[1] for p in parts])
  np.savez(f"/tmp/tgt/{name}.npz", images=images); np.save(f"/tmp/tgt/{name}_truth.npy", dist)
  print(name, images.shape)
