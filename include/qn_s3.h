/* placeholder */
#ifndef qn_s3_H_INCLUDED
#define qn_s3_H_INCLUDED
#endif
