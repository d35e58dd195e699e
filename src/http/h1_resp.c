/* placeholder: filled in by its module's author */
typedef int tn_placeholder_h1_resp_t;
