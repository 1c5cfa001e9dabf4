/* placeholder */
#ifndef X_qn_transfer
#define X_qn_transfer
#endif
