; Span query for Python (capture names are fixed: see aixaudit/spans.py).
; Bodies are the `block` node after the colon (it starts at the first statement).
; Conditions are the test expression itself; Python has no grammar parentheses around it.

(function_definition body: (block) @span.function_body)

(if_statement consequence: (block) @span.block_body)
(elif_clause consequence: (block) @span.block_body)
(else_clause body: (block) @span.block_body)
(for_statement body: (block) @span.block_body)
(while_statement body: (block) @span.block_body)
(try_statement body: (block) @span.block_body)
(except_clause (block) @span.block_body)
(finally_clause (block) @span.block_body)
(with_statement body: (block) @span.block_body)
(case_clause consequence: (block) @span.block_body)

(block) @span.block

(if_statement condition: (_) @span.condition)
(elif_clause condition: (_) @span.condition)
(while_statement condition: (_) @span.condition)
(conditional_expression (_) "if" . (_) @span.condition)

(call arguments: (argument_list) @span.arguments) @span.call

[
  (expression_statement)
  (return_statement)
  (raise_statement)
  (assert_statement)
  (delete_statement)
  (pass_statement)
  (break_statement)
  (continue_statement)
  (global_statement)
  (nonlocal_statement)
  (import_statement)
  (import_from_statement)
  (if_statement)
  (for_statement)
  (while_statement)
  (try_statement)
  (with_statement)
  (match_statement)
] @span.statement
