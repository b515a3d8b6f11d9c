// Loads every built-in balancing policy; each file registers itself by name.

import './round-robin.ts';
