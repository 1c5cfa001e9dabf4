/* placeholder */
#ifndef qn_blobstore_H_INCLUDED
#define qn_blobstore_H_INCLUDED
#endif
