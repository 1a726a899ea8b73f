-- Counting active issuances by status (status lines, metrics) reads only this
-- small partial index, however many settled rows the table holds.
CREATE INDEX issuances_active_by_status ON issuances (status) WHERE watch = 'active';
