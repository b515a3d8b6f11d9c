// Loads every built-in balancing policy; each file registers itself by name.

import './round-robin.ts';
import './least-request.ts';
import './peak-ewma.ts';
import './ring-hash.ts';
import './maglev.ts';
import './locality.ts';
