/* placeholder */
#ifndef qn_tree_H_INCLUDED
#define qn_tree_H_INCLUDED
#endif
