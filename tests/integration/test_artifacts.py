#!/usr/bin/env python3
# placeholder
import sys
print("1..0 # SKIP placeholder")
sys.exit(77)
