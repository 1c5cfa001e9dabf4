/* placeholder */
#ifndef X_qn_blobserver
#define X_qn_blobserver
#endif
