// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"math"
	"math/rand/v2"
)

// Zipf-distributed keys
//
// BMC's workload draws keys with a Zipf skew of 0.99. math/rand/v2's
// Zipf needs an exponent over 1, so for skews below 1 keys are drawn by
// the rejection-free method of Gray et al. ("Quickly generating
// billion-record synthetic databases", SIGMOD'94), the one YCSB uses:
// P(key i) is proportional to 1/(i+1)^theta.

// keyDist draws key indices in [0, n).
type keyDist interface{ next() int }

type uniformKeys struct {
	rng *rand.Rand
	n   int
}

func (u uniformKeys) next() int { return u.rng.IntN(u.n) }

type goZipf struct{ z *rand.Zipf }

func (g goZipf) next() int { return int(g.z.Uint64()) }

// grayZipf is Gray et al.'s generator for 0 < theta < 1.
type grayZipf struct {
	rng                      *rand.Rand
	n                        float64
	theta, alpha, zetan, eta float64
	half                     float64 // 1 + 0.5^theta
}

func newGrayZipf(rng *rand.Rand, n int, theta float64) *grayZipf {
	zeta := func(n int) float64 {
		var s float64
		for i := 1; i <= n; i++ {
			s += 1 / math.Pow(float64(i), theta)
		}
		return s
	}
	z := &grayZipf{rng: rng, n: float64(n), theta: theta, alpha: 1 / (1 - theta), zetan: zeta(n)}
	z.eta = (1 - math.Pow(2/z.n, 1-theta)) / (1 - zeta(2)/z.zetan)
	z.half = 1 + math.Pow(0.5, theta)
	return z
}

func (z *grayZipf) next() int {
	u := z.rng.Float64()
	uz := u * z.zetan
	switch {
	case uz < 1:
		return 0
	case uz < z.half:
		return 1
	}
	i := int(z.n * math.Pow(z.eta*u-z.eta+1, z.alpha))
	return min(max(i, 0), int(z.n)-1)
}

// newKeyDist picks the generator for skew s over n keys: uniform for 0,
// Gray et al.'s below 1, math/rand/v2's above 1.
func newKeyDist(rng *rand.Rand, n int, s float64) keyDist {
	switch {
	case s == 0 || n < 2:
		return uniformKeys{rng, n}
	case s < 1:
		return newGrayZipf(rng, n, s)
	default:
		return goZipf{rand.NewZipf(rng, s, 1, uint64(n-1))}
	}
}
